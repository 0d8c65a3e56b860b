/* s3 - a small S3 command-line client on sparta_imager.h.

     s3 get     s3://BUCKET/KEY [FILE]     object to FILE (default stdout)
     s3 put     s3://BUCKET/KEY [FILE]     FILE (default stdin) to the object
                [--content-type TYPE] [--meta NAME=VALUE]...
     s3 head    s3://BUCKET/KEY            status, type, length, ETag, metadata
     s3 rm      s3://BUCKET/KEY
     s3 presign s3://BUCKET/KEY [--expires SECONDS]   (default 3600)
     s3 mb      s3://BUCKET                create the bucket
     s3 ls      s3://BUCKET[/PREFIX] [--manifest] [--page-size N]
                every key under PREFIX, one per line, across all pages;
                --manifest prints an S3 Batch Operations CSV manifest
                instead: BUCKET,KEY with the key URL-encoded
     s3 -h | --help                        this summary, on stdout

   Settings come from the environment like the AWS CLI: AWS_ACCESS_KEY_ID,
   AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (else ~/.aws/credentials and
   AWS_PROFILE), AWS_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.
   Exit status: 0 success, 1 failure, 2 usage, 3 not found, 4 access denied;
   the reason (with S3's error code and message) goes to stderr. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <curl/curl.h>

#define MAX_META 16

static const char usage_text[] =
    "usage: s3 get     s3://BUCKET/KEY [FILE]      object to FILE (default stdout)\n"
    "       s3 put     s3://BUCKET/KEY [FILE]      FILE (default stdin) to the object\n"
    "                  [--content-type TYPE] [--meta NAME=VALUE]...\n"
    "       s3 head    s3://BUCKET/KEY             status, type, length, ETag, metadata\n"
    "       s3 rm      s3://BUCKET/KEY\n"
    "       s3 presign s3://BUCKET/KEY [--expires SECONDS]   (1..604800, default 3600)\n"
    "       s3 mb      s3://BUCKET                 create the bucket\n"
    "       s3 ls      s3://BUCKET[/PREFIX] [--manifest] [--page-size N]\n"
    "                  keys under PREFIX, one per line; --manifest: an S3 Batch\n"
    "                  Operations CSV manifest (BUCKET,KEY with KEY URL-encoded)\n"
    "       s3 -h|--help\n"
    "environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,\n"
    "  AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL)\n"
    "exit status: 0 ok, 1 failure, 2 usage, 3 not found, 4 access denied\n";

typedef struct args {
    const char *cmd, *uri, *file, *content_type;
    long expires;
    int manifest, page_size, expires_given;
    spim_header meta[MAX_META];
    size_t meta_count;
    char bucket[256];
    const char *key;                /* ls: the prefix */
    char why[512];                  /* the usage error */
} args;

static int exit_code(spim_status st)
{
    if (st == SPIM_OK) return 0;
    if (st == SPIM_ERR_NOT_FOUND) return 3;
    if (st == SPIM_ERR_AUTH) return 4;
    return 1;
}

/* Record why the arguments are wrong (exit 2); returns 0. */
#ifdef __GNUC__   /* the compiler checks each format against its arguments */
static int bad(args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
static int bad(args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->why, sizeof a->why, fmt, ap);
    va_end(ap);
    return 0;
}

/* s3://BUCKET/KEY: the key is everything after the first slash, raw. */
static int split_uri(args *a)
{
    const char *p, *slash;
    if (strncmp(a->uri, "s3://", 5) != 0)
        return bad(a, "URI: expected s3://BUCKET/KEY, got '%s'", a->uri);
    p = a->uri + 5;
    slash = strchr(p, '/');
    if (!slash) slash = p + strlen(p);
    if (slash == p) return bad(a, "URI: no bucket name in '%s'", a->uri);
    if ((size_t)(slash - p) >= sizeof a->bucket)
        return bad(a, "URI: bucket name too long in '%.64s...'", a->uri);
    memcpy(a->bucket, p, (size_t)(slash - p));
    a->bucket[slash - p] = 0;
    a->key = *slash ? slash + 1 : "";
    return 1;
}

/* A whole decimal number in [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (!*s) return 0;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* One option; *i moves past its value. 0 with a->why set on a bad one. */
static int parse_option(int argc, char **argv, int *i, args *a)
{
    const char *opt = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    char *eq;
    long v;
    if (strcmp(opt, "--manifest") == 0) {
        a->manifest = 1;
        return 1;
    }
    if (strcmp(opt, "--expires") != 0 && strcmp(opt, "--content-type") != 0 &&
        strcmp(opt, "--meta") != 0 && strcmp(opt, "--page-size") != 0)
        return bad(a, "%s: unknown option (see s3 --help)", opt);
    if (!val) return bad(a, "%s: needs a value", opt);
    (*i)++;
    if (strcmp(opt, "--expires") == 0) {
        char rule[160];
        snprintf(rule, sizeof rule, "must be an integer 1..%d seconds (7 days), got '%.64s'",
                 SPIM_PRESIGN_MAX_EXPIRES, val);
        if (!parse_long(val, 1, SPIM_PRESIGN_MAX_EXPIRES, &a->expires))
            return bad(a, "%s: %s", opt, rule);
        a->expires_given = 1;
    } else if (strcmp(opt, "--page-size") == 0) {
        if (!parse_long(val, 1, 1000, &v))
            return bad(a, "%s: must be an integer 1..1000 keys, got '%.64s'", opt, val);
        a->page_size = (int)v;
    } else if (strcmp(opt, "--content-type") == 0) {
        a->content_type = val;
    } else {
        if (a->meta_count >= MAX_META) return bad(a, "%s: at most %d of them", opt, MAX_META);
        if (!(eq = strchr(argv[*i], '=')) || eq == argv[*i])
            return bad(a, "%s: must be NAME=VALUE, got '%.64s'", opt, val);
        *eq = 0;
        a->meta[a->meta_count].name = argv[*i];
        a->meta[a->meta_count++].value = eq + 1;
    }
    return 1;
}

/* Which options and operands each command takes. */
static int check_command(args *a)
{
    static const char *const cmds[] = { "get", "put", "head", "rm", "presign", "mb", "ls", NULL };
    const char *c = a->cmd;
    int i, known = 0;
    for (i = 0; cmds[i]; i++) known |= strcmp(c, cmds[i]) == 0;
    if (!known)
        return bad(a, "unknown command '%s' (expected get, put, head, rm, presign, mb or ls)", c);
    if (!a->uri)
        return bad(a, "%s: needs s3://BUCKET%s", c,
                   strcmp(c, "mb") && strcmp(c, "ls") ? "/KEY" : "");
    if (!split_uri(a)) return 0;
    if (strcmp(c, "mb") == 0 && a->key[0])
        return bad(a, "%s: takes s3://BUCKET without a key, got '%s'", c, a->uri);
    if (strcmp(c, "mb") != 0 && strcmp(c, "ls") != 0 && !a->key[0])
        return bad(a, "%s: needs s3://BUCKET/KEY with a key, got '%s'", c, a->uri);
    if (a->file && strcmp(c, "get") != 0 && strcmp(c, "put") != 0)
        return bad(a, "%s: unexpected argument '%s'", c, a->file);
    if (a->expires_given && strcmp(c, "presign") != 0)
        return bad(a, "--expires: only for presign, not %s", c);
    if ((a->manifest || a->page_size) && strcmp(c, "ls") != 0)
        return bad(a, "%s: only for ls, not %s", a->manifest ? "--manifest" : "--page-size", c);
    if ((a->content_type || a->meta_count) && strcmp(c, "put") != 0)
        return bad(a, "%s: only for put, not %s", a->content_type ? "--content-type" : "--meta", c);
    return 1;
}

/* 1 parsed, 0 usage error (a->why), -1 help asked for. */
static int parse_args(int argc, char **argv, args *a)
{
    int i;
    memset(a, 0, sizeof *a);
    a->expires = 3600;
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return -1;
    if (argc < 2) return bad(a, "no command (expected get, put, head, rm, presign, mb or ls)");
    a->cmd = argv[1];
    for (i = 2; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
            if (!parse_option(argc, argv, &i, a)) return 0;
        } else if (!a->uri) {
            a->uri = argv[i];
        } else if (!a->file) {
            a->file = argv[i];
        } else {
            return bad(a, "%s: unexpected argument '%s'", a->cmd, argv[i]);
        }
    }
    return check_command(a);
}

static spim_status read_input(const char *file, spim_buf *out, spim_error *err)
{
    unsigned char chunk[65536];
    size_t n;
    if (file && strcmp(file, "-") != 0) return spim_read_file(file, 0, out, err);
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (spim_buf_append(out, chunk, n) != SPIM_OK)
            return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory");
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
    if (ok) return SPIM_OK;
    return spim_error_set(err, SPIM_ERR_IO, "error writing %s", file ? file : "stdout");
}

static void print_head(const spim_s3_object *o)
{
    size_t i;
    printf("status: %d\n", o->http_status);
    printf("content-type: %s\n", o->content_type);
    printf("content-length: %lld\n", (long long)o->content_length);
    printf("etag: %s\n", o->etag);
    for (i = 0; i < o->metadata_count; i++)
        printf("meta-%s: %s\n", o->metadata[i].name, o->metadata[i].value);
}

/* One line of a Batch Operations CSV manifest. The service URL-decodes the
   key: percent-encoding everything but RFC 3986's unreserved characters and
   '/' keeps commas, quotes and line breaks out of the CSV and reads the
   same whether a decoder takes '+' for a space or not. */
static spim_status print_manifest_line(const char *bucket, const spim_s3_list_entry *e,
                                       spim_buf *line)
{
    spim_status st;
    spim_buf_reset(line);
    st = spim_buf_appendf(line, "%s,", bucket);
    if (st == SPIM_OK) st = spim_uri_encode(line, e->key, e->key_len, 1);
    if (st == SPIM_OK) st = spim_buf_append(line, "\n", 1);
    if (st == SPIM_OK && fwrite(line->data, 1, line->len, stdout) != line->len) st = SPIM_ERR_IO;
    return st;
}

/* Every page of the listing, printed as it arrives. */
static spim_status list(spim_s3_client *c, const args *a, spim_error *err)
{
    spim_s3_list_options o;
    spim_s3_list *page = NULL;
    spim_buf token = SPIM_BUF_INIT, line = SPIM_BUF_INIT;
    spim_status st;
    size_t i;
    memset(&o, 0, sizeof o);
    o.prefix = a->key;
    o.max_keys = a->page_size;
    do {
        o.continuation_token = token.len ? (const char *)token.data : NULL;
        st = spim_s3_list_objects(c, a->bucket, &o, &page, err);
        for (i = 0; st == SPIM_OK && page && i < page->count; i++) {
            if (a->manifest) st = print_manifest_line(a->bucket, &page->entries[i], &line);
            else if (fwrite(page->entries[i].key, 1, page->entries[i].key_len, stdout) !=
                         page->entries[i].key_len || putchar('\n') == EOF)
                st = SPIM_ERR_IO;
        }
        if (st == SPIM_ERR_IO) st = spim_error_set(err, SPIM_ERR_IO, "error writing stdout");
        else if (st == SPIM_ERR_NOMEM) st = spim_error_set(err, SPIM_ERR_NOMEM, "out of memory");
        spim_buf_reset(&token);
        if (st == SPIM_OK && page->is_truncated &&
            spim_buf_append(&token, page->next_token, strlen(page->next_token)) != SPIM_OK)
            st = spim_error_set(err, SPIM_ERR_NOMEM, "out of memory");
        spim_s3_list_free(page);
        page = NULL;
    } while (st == SPIM_OK && token.len);
    if (st == SPIM_OK && fflush(stdout) != 0)
        st = spim_error_set(err, SPIM_ERR_IO, "error writing stdout");
    spim_buf_free(&token);
    spim_buf_free(&line);
    return st;
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
        if (st == SPIM_OK)
            st = spim_s3_put(c, a->bucket, a->key, buf.data, buf.len, &po, &obj, err);
        if (st == SPIM_OK) printf("etag: %s\n", obj.etag);
    } else if (strcmp(a->cmd, "head") == 0) {
        st = spim_s3_head(c, a->bucket, a->key, &obj, err);
        if (st == SPIM_OK) print_head(&obj);
    } else if (strcmp(a->cmd, "rm") == 0) {
        st = spim_s3_delete(c, a->bucket, a->key, err);
    } else if (strcmp(a->cmd, "presign") == 0) {
        st = spim_s3_presign_get(c, a->bucket, a->key, a->expires, &buf, err);
        if (st == SPIM_OK) printf("%s\n", (const char *)buf.data);
    } else if (strcmp(a->cmd, "ls") == 0) {
        st = list(c, a, err);
    } else {
        st = spim_s3_create_bucket(c, a->bucket, err);
    }
    spim_s3_object_free(&obj);
    spim_buf_free(&buf);
    return st;
}

int main(int argc, char **argv)
{
    spim_s3_client *c = NULL;
    spim_error err;
    spim_status st;
    args a;
    int parsed = parse_args(argc, argv, &a);
    if (parsed < 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!parsed) {
        fprintf(stderr, "s3: %s\n(s3 --help prints the usage)\n", a.why);
        return 2;
    }
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
