/* s3 - a small S3 command-line client on sparta_imager.h.

     s3 get     s3://BUCKET/KEY [FILE]     object to FILE (default stdout)
     s3 put     s3://BUCKET/KEY [FILE]     FILE (default stdin) to the object
                [--content-type TYPE] [--meta NAME=VALUE]...
     s3 head    s3://BUCKET/KEY            status, type, length, ETag, metadata
     s3 rm      s3://BUCKET/KEY
     s3 presign s3://BUCKET/KEY [--expires SECONDS]   (default 3600)
     s3 mb      s3://BUCKET                create the bucket

   Settings come from the environment like the AWS CLI: AWS_ACCESS_KEY_ID,
   AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (else ~/.aws/credentials and
   AWS_PROFILE), AWS_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.
   Exit status: 0 success, 1 failure, 2 usage, 3 not found, 4 access denied;
   the reason (with S3's error code and message) goes to stderr. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <curl/curl.h>

#define MAX_META 16

typedef struct args {
    const char *cmd, *uri, *file, *content_type;
    long expires;
    spim_header meta[MAX_META];
    size_t meta_count;
    char bucket[256];
    const char *key;
} args;

static int usage(const char *why)
{
    if (why) fprintf(stderr, "s3: %s\n", why);
    fprintf(stderr,
            "usage: s3 get|put|head|rm|presign s3://BUCKET/KEY [FILE] [--expires S]\n"
            "          [--content-type TYPE] [--meta NAME=VALUE]\n"
            "       s3 mb s3://BUCKET\n");
    return 2;
}

static int exit_code(spim_status st)
{
    if (st == SPIM_OK) return 0;
    if (st == SPIM_ERR_NOT_FOUND) return 3;
    if (st == SPIM_ERR_AUTH) return 4;
    return 1;
}

/* s3://BUCKET/KEY: the key is everything after the first slash, raw. */
static int split_uri(args *a)
{
    const char *p, *slash;
    if (strncmp(a->uri, "s3://", 5) != 0) return 0;
    p = a->uri + 5;
    slash = strchr(p, '/');
    if (!slash) slash = p + strlen(p);
    if (slash == p || (size_t)(slash - p) >= sizeof a->bucket) return 0;
    memcpy(a->bucket, p, (size_t)(slash - p));
    a->bucket[slash - p] = 0;
    a->key = *slash ? slash + 1 : "";
    return 1;
}

static int parse_args(int argc, char **argv, args *a)
{
    int i;
    memset(a, 0, sizeof *a);
    a->expires = 3600;
    if (argc < 3) return 0;
    a->cmd = argv[1];
    for (i = 2; i < argc; i++) {
        char *eq;
        if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc) {
            char *end;
            a->expires = strtol(argv[++i], &end, 10);
            if (*end || a->expires < 1 || a->expires > SPIM_PRESIGN_MAX_EXPIRES) return 0;
        } else if (strcmp(argv[i], "--content-type") == 0 && i + 1 < argc) {
            a->content_type = argv[++i];
        } else if (strcmp(argv[i], "--meta") == 0 && i + 1 < argc && a->meta_count < MAX_META &&
                   (eq = strchr(argv[i + 1], '=')) != NULL) {
            *eq = 0;
            a->meta[a->meta_count].name = argv[++i];
            a->meta[a->meta_count++].value = eq + 1;
        } else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
            return 0;
        } else if (!a->uri) {
            a->uri = argv[i];
        } else if (!a->file) {
            a->file = argv[i];
        } else {
            return 0;
        }
    }
    return a->uri && split_uri(a);
}

static spim_status read_input(const char *file, spim_buf *out, spim_error *err)
{
    unsigned char chunk[65536];
    size_t n;
    if (file && strcmp(file, "-") != 0) return spim_read_file(file, 0, out, err);
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (spim_buf_append(out, chunk, n) != SPIM_OK) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory");
    if (ferror(stdin)) return spim_error_set(err, SPIM_ERR_IO, "error reading stdin");
    return SPIM_OK;
}

/* Written only once the whole object is in memory: a failed GET leaves no file. */
static spim_status write_output(const char *file, const spim_buf *b, spim_error *err)
{
    FILE *f = stdout;
    int ok;
    if (file && strcmp(file, "-") != 0 && !(f = fopen(file, "wb")))
        return spim_error_set(err, SPIM_ERR_IO, "cannot create %s: %s", file, strerror(errno));
    ok = fwrite(b->data, 1, b->len, f) == b->len;
    ok = (f == stdout ? fflush(f) == 0 : fclose(f) == 0) && ok;
    return ok ? SPIM_OK : spim_error_set(err, SPIM_ERR_IO, "error writing %s", file ? file : "stdout");
}

static void print_head(const spim_s3_object *o)
{
    size_t i;
    printf("status: %d\n", o->http_status);
    printf("content-type: %s\n", o->content_type);
    printf("content-length: %lld\n", (long long)o->content_length);
    printf("etag: %s\n", o->etag);
    for (i = 0; i < o->metadata_count; i++) printf("meta-%s: %s\n", o->metadata[i].name, o->metadata[i].value);
}

static spim_status run(spim_s3_client *c, const args *a, spim_error *err)
{
    spim_s3_object obj;
    spim_buf buf = SPIM_BUF_INIT;
    spim_status st;
    memset(&obj, 0, sizeof obj);
    if (strcmp(a->cmd, "get") == 0) {
        st = spim_s3_get(c, a->bucket, a->key, 0, &obj, err);
        if (st == SPIM_OK) st = write_output(a->file, &obj.body, err);
    } else if (strcmp(a->cmd, "put") == 0) {
        spim_s3_put_options po;
        memset(&po, 0, sizeof po);
        po.content_type = a->content_type;
        po.metadata = a->meta;
        po.metadata_count = a->meta_count;
        st = read_input(a->file, &buf, err);
        if (st == SPIM_OK) st = spim_s3_put(c, a->bucket, a->key, buf.data, buf.len, &po, &obj, err);
        if (st == SPIM_OK) printf("etag: %s\n", obj.etag);
    } else if (strcmp(a->cmd, "head") == 0) {
        st = spim_s3_head(c, a->bucket, a->key, &obj, err);
        if (st == SPIM_OK) print_head(&obj);
    } else if (strcmp(a->cmd, "rm") == 0) {
        st = spim_s3_delete(c, a->bucket, a->key, err);
    } else if (strcmp(a->cmd, "presign") == 0) {
        st = spim_s3_presign_get(c, a->bucket, a->key, a->expires, &buf, err);
        if (st == SPIM_OK) printf("%s\n", (const char *)buf.data);
    } else {
        st = spim_s3_create_bucket(c, a->bucket, err);
    }
    spim_s3_object_free(&obj);
    spim_buf_free(&buf);
    return st;
}

int main(int argc, char **argv)
{
    static const char *const cmds[] = { "get", "put", "head", "rm", "presign", "mb", NULL };
    spim_s3_client *c = NULL;
    spim_error err;
    spim_status st;
    args a;
    int i, known = 0;
    if (!parse_args(argc, argv, &a)) return usage(argc < 3 ? NULL : "bad arguments");
    for (i = 0; cmds[i]; i++) known |= strcmp(a.cmd, cmds[i]) == 0;
    if (!known) return usage("unknown command");
    if ((strcmp(a.cmd, "mb") == 0) != (a.key[0] == 0))
        return usage(a.key[0] ? "mb takes s3://BUCKET without a key" : "this command needs s3://BUCKET/KEY");
    spim_log_init_from_env();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&err, 0, sizeof err);
    st = spim_s3_client_create(NULL, &c, &err);
    if (st == SPIM_OK) st = run(c, &a, &err);
    if (st != SPIM_OK) fprintf(stderr, "%s\n", err.message);
    spim_s3_client_free(c);
    curl_global_cleanup();
    return exit_code(st);
}
