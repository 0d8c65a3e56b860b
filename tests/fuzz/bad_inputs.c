/* bad_inputs.c - feeds the library every kind of bad input the project
   answers and prints, as a Markdown table, what the user sees: the status
   and the exact message (tests/fuzz/BAD_INPUTS.md is this program's output).
   Network cases talk to a canned HTTP server forked here on 127.0.0.1.
      build/fuzz/bad_inputs > tests/fuzz/BAD_INPUTS.md   (from the repository root) */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int rows;
static char port_text[24];  /* ":PORT" of the last canned server, shown as ":PORT" */

/* The message cell, escaped for Markdown, and the end of the row. */
static void row_tail(const char *message)
{
    const char *m;
    size_t pl = strlen(port_text);
    for (m = message; *m; m++) {
        if (pl && strncmp(m, port_text, pl) == 0 && !(m[pl] >= '0' && m[pl] <= '9')) {
            fputs(":PORT", stdout);
            m += pl - 1;
        } else if (*m == '|') fputs("\\|", stdout);
        else if (*m == '\n') fputs(" ", stdout);
        else putchar(*m);
    }
    printf(" |\n");
    rows++;
}

/* One table row: area, input, status, message. */
static void row(const char *area, const char *input, spim_status st, const char *message)
{
    printf("| %s | %s | `%s` | ", area, input, st == SPIM_OK ? "ok" : spim_status_str(st));
    row_tail(message);
}

/* ERROR log lines since the last take_log(), "message: errorType: errorMessage". */
static spim_buf logged = SPIM_BUF_INIT;

static void log_sink(const char *line, void *user)
{
    cJSON *j = cJSON_Parse(line);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message"),
                *t = cJSON_GetObjectItemCaseSensitive(j, "errorType"),
                *e = cJSON_GetObjectItemCaseSensitive(j, "errorMessage");
    (void)user;
    if (cJSON_IsString(m)) {
        if (logged.len) spim__buf_append_str(&logged, " / ");
        spim__buf_append_str(&logged, m->valuestring);
        if (cJSON_IsString(t) && cJSON_IsString(e))
            spim_buf_appendf(&logged, ": %s: %s", t->valuestring, e->valuestring);
    }
    cJSON_Delete(j);
}

static void row_err(const char *area, const char *input, spim_status st, const spim_error *err)
{
    if (st == SPIM_OK && logged.len) {
        row(area, input, st, (const char *)logged.data);
    } else if (err->transient) {
        printf("| %s | %s | `%s` (transient: retried) | ", area, input, spim_status_str(st));
        row_tail(err->message);
    } else {
        row(area, input, st, st == SPIM_OK ? "(accepted)" : err->message);
    }
    spim_buf_reset(&logged);
}

/* ---- a canned HTTP server ------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int port;
} server;

/* Serve `n` answers, one per connection, in order; each request is read up
   to the end of its headers plus Content-Length bytes. */
static server serve(const char *const *answers, const size_t *lens, int n)
{
    server s = { -1, 0 };
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, i;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        perror("bad_inputs: server");
        exit(1);
    }
    s.port = ntohs(a.sin_port);
    snprintf(port_text, sizeof port_text, ":%d", s.port);
    fflush(stdout);
    s.pid = fork();
    if (s.pid == 0) {
        alarm(30);
        for (i = 0; i < n; i++) {
            char buf[65536];
            size_t got = 0, total = 0;
            long want = -1;
            int c = accept(fd, NULL, NULL);
            if (c < 0) _exit(1);
            for (;;) {
                ssize_t r = read(c, buf + got, sizeof buf - 1 - got);
                char *end, *cl;
                if (r <= 0) break;
                got += (size_t)r;
                total += (size_t)r;
                buf[got] = 0;
                if (want < 0 && (end = strstr(buf, "\r\n\r\n")) != NULL) {
                    cl = strstr(buf, "Content-Length: ");
                    want = (long)(end + 4 - buf) + (cl && cl < end ? atol(cl + 16) : 0);
                }
                if (want >= 0 && (long)total >= want) break;
                if (got >= sizeof buf - 1) got = 0; /* a big body: keep draining */
            }
            {
                size_t off = 0;
                while (off < lens[i]) {
                    ssize_t w = write(c, answers[i] + off, lens[i] - off);
                    if (w <= 0) break;
                    off += (size_t)w;
                }
            }
            close(c);
        }
        _exit(0);
    }
    close(fd);
    return s;
}

static void server_done(server s)
{
    int status;
    if (s.pid > 0) {
        kill(s.pid, SIGTERM);
        waitpid(s.pid, &status, 0);
    }
}

/* ---- events -------------------------------------------------------------- */

static void event_case(const char *input, const char *json, size_t len, const spim_event_options *opt)
{
    spim_event *ev = NULL;
    spim_error err;
    spim_status st;
    spim__error_clear(&err);
    st = spim_event_parse(json, len, opt, &ev, &err);
    if (st == SPIM_OK && ev->record_count && ev->records[0].status != SPIM_OK)
        row("event (record skipped, batch goes on)", input, ev->records[0].status, ev->records[0].error);
    else
        row_err("event (invocation fails)", input, st, &err);
    spim_event_free(ev);
}

static void events(void)
{
    static const char rec_head[] = "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"";
    char json[4096], *big;
    spim_event_options small;
    size_t n;
#define EV(input, text) event_case(input, text, strlen(text), NULL)
    EV("empty payload", "");
    EV("not JSON", "hello, world");
    EV("JSON followed by garbage", "{\"Records\":[]} trailing");
    event_case("a NUL byte in the payload", "{\"Records\":\0[]}", 15, NULL);
    EV("`\\u0000` escape in a string", "{\"Records\":[{\"s3\":{\"object\":{\"key\":\"a\\u0000b\"}}}]}");
    EV("`Records` is not an array", "{\"Records\":{\"eventName\":\"ObjectCreated:Put\"}}");
    EV("a JSON array at the top", "[1,2,3]");
    EV("neither S3, SQS, SNS, EventBridge nor Batch Operations", "{\"hello\":\"world\"}");
    EV("record without `s3.object.key`", "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{}}}]}");
    EV("`s3.object.key` is a number", "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":12}}}]}");
    EV("empty bucket name", "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"\"},\"object\":{\"key\":\"k\"}}}]}");
    snprintf(json, sizeof json, "%s%s\"}}}]}", rec_head, "photos/bad%zzescape.jpg");
    EV("key with an invalid escape `%zz`", json);
    snprintf(json, sizeof json, "%s%s\"}}}]}", rec_head, "photos/cut%4");
    EV("key ending in a truncated escape `%4`", json);
    snprintf(json, sizeof json, "%s%s\"}}}]}", rec_head, "a%00b");
    EV("key decoding to a NUL byte `%00`", json);
    snprintf(json, sizeof json, "%s%s\"}}}]}", rec_head, "");
    EV("empty key", json);
    n = strlen(rec_head);
    big = (char *)malloc(n + 2000 + 16);
    memcpy(big, rec_head, n);
    memset(big + n, 'k', 1100);
    strcpy(big + n + 1100, "\"}}}]}");
    EV("key over 1024 bytes after decoding", big);
    free(big);
    EV("SQS message whose body is not JSON", "{\"Records\":[{\"messageId\":\"m-1\",\"eventSource\":\"aws:sqs\",\"body\":\"not json\"}]}");
    EV("SNS notification whose Message is not an S3 event", "{\"Records\":[{\"EventSource\":\"aws:sns\",\"Sns\":{\"Type\":\"Notification\",\"Message\":\"{\\\"foo\\\":1}\"}}]}");
    EV("EventBridge event without `detail`", "{\"version\":\"0\",\"detail-type\":\"Object Created\",\"source\":\"aws.s3\",\"resources\":[]}");
    EV("Batch Operations: unknown `invocationSchemaVersion`", "{\"invocationSchemaVersion\":\"3.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[]}");
    EV("Batch Operations: no `job.id`", "{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{},\"tasks\":[]}");
    EV("Batch Operations: `tasks` is not an array", "{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":{}}");
    EV("Batch Operations task: `s3BucketArn` is not an S3 ARN", "{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[{\"taskId\":\"t\",\"s3Key\":\"k\",\"s3BucketArn\":\"photos\"}]}");
    EV("Batch Operations task (schema 2.0) without `s3Bucket`", "{\"invocationSchemaVersion\":\"2.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[{\"taskId\":\"t\",\"s3Key\":\"k\"}]}");
    EV("Batch Operations task: `s3Key` with a truncated escape", "{\"invocationSchemaVersion\":\"2.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[{\"taskId\":\"t\",\"s3Key\":\"cut%4\",\"s3Bucket\":\"b\"}]}");
    memset(&small, 0, sizeof small);
    small.max_records = 2;
    snprintf(json, sizeof json, "{\"Records\":[%s,%s,%s]}",
             "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"1\"}}}",
             "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"2\"}}}",
             "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"3\"}}}");
    event_case("more records than the limit (here 2; default 10000)", json, strlen(json), &small);
    n = SPIM_EVENT_MAX_INPUT + 1;
    big = (char *)malloc(n);
    memset(big, ' ', n);
    event_case("payload over 6 MiB + 100 B (Lambda's limit)", big, n, NULL);
    free(big);
#undef EV
}

/* ---- credentials, configuration ------------------------------------------ */

static void credentials(void)
{
    static const struct { const char *input, *file, *profile; } cases[] = {
        { "credentials file without the profile", "[default]\naws_access_key_id=K\naws_secret_access_key=S\n", "dev" },
        { "profile without a secret key", "[default]\naws_access_key_id = AKIDEXAMPLE\n", NULL },
        { "key id with a space in it", "[default]\naws_access_key_id = AKID EXAMPLE\naws_secret_access_key = S\n", NULL },
        { "empty secret key", "[default]\naws_access_key_id = K\naws_secret_access_key =\n", NULL },
    };
    spim_credentials c;
    spim_error err;
    spim_status st;
    size_t i;
    char *big;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spim__error_clear(&err);
        st = spim__s3_parse_credentials(cases[i].file, strlen(cases[i].file), cases[i].profile, &c, &err);
        row_err("credentials file", cases[i].input, st, &err);
    }
    big = (char *)calloc(1, SPIM_S3_CREDENTIALS_FILE_MAX + 2);
    memset(big, '#', SPIM_S3_CREDENTIALS_FILE_MAX + 1);
    spim__error_clear(&err);
    st = spim__s3_parse_credentials(big, SPIM_S3_CREDENTIALS_FILE_MAX + 1, NULL, &c, &err);
    row_err("credentials file", "credentials file over 1 MiB", st, &err);
    free(big);
}

static void client_config(void)
{
    spim_credentials creds;
    spim_s3_options o;
    spim_s3_client *c = NULL;
    spim_error err;
    spim_status st;
    memset(&creds, 0, sizeof creds);
    strcpy(creds.access_key_id, "AKIDEXAMPLE");
    strcpy(creds.secret_access_key, "secret");

    memset(&o, 0, sizeof o);
    o.credentials = &creds;
    o.region = "us east 1";
    spim__error_clear(&err);
    st = spim_s3_client_create(&o, &c, &err);
    row_err("configuration", "`AWS_REGION=us east 1`", st, &err);
    spim_s3_client_free(c);
    c = NULL;

    memset(&o, 0, sizeof o);
    o.credentials = &creds;
    o.endpoint = "ftp://127.0.0.1:7480";
    spim__error_clear(&err);
    st = spim_s3_client_create(&o, &c, &err);
    row_err("configuration", "`AWS_ENDPOINT_URL_S3=ftp://127.0.0.1:7480`", st, &err);
    spim_s3_client_free(c);
    c = NULL;

    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    spim__error_clear(&err);
    st = spim_s3_client_create(NULL, &c, &err);
    row_err("configuration", "no credentials anywhere", st, &err);
    spim_s3_client_free(c);
    c = NULL;

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    spim__error_clear(&err);
    st = spim_s3_client_create(NULL, &c, &err);
    row_err("configuration", "`AWS_ACCESS_KEY_ID` set, `AWS_SECRET_ACCESS_KEY` not", st, &err);
    spim_s3_client_free(c);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

static void stamp_options(void)
{
    static unsigned char px[4 * 4 * 3], rgba[2 * 2 * 4];
    spim_stamp stamp;
    spim_stamp_options o;
    spim_error err;
    spim_status st;
    stamp.rgba = rgba;
    stamp.width = stamp.height = 2;
#define OPT(input, field, value) do { memset(&o, 0, sizeof o); o.field = value; spim__error_clear(&err); \
        st = spim__stamp_draw(px, 4, 4, 3, 1, &stamp, &o, &err); row_err("configuration", input, st, &err); } while (0)
    OPT("`scale` 1.5 in spim_stamp_options (library call)", scale, 1.5);
    OPT("`opacity` -0.2 in spim_stamp_options (library call)", opacity, -0.2);
    OPT("`margin` -3 in spim_stamp_options (library call)", margin, -3);
    OPT("gravity out of range (library call)", gravity, (spim_gravity)42);
#undef OPT
    /* the imager's variables and build/stamp's flags: spim_stamp_option_set's
       message, prefixed with the variable as the imager does */
#define TEXT(var, name, value) do { memset(&o, 0, sizeof o); spim__error_clear(&err); \
        st = spim_stamp_option_set(&o, name, value, &err); \
        if (st != SPIM_OK) spim_error_set(&err, st, "%s: %s", var, err.message); \
        row_err("configuration", "`" var "=" value "`", st, &err); } while (0)
    TEXT("SPARTA_STAMP_SCALE", "scale", "1.5");
    TEXT("SPARTA_STAMP_OPACITY", "opacity", "-0.2");
    TEXT("SPARTA_STAMP_MARGIN", "margin", "-3");
    TEXT("SPARTA_STAMP_GRAVITY", "gravity", "middle");
    TEXT("SPARTA_JPEG_QUALITY", "quality", "101");
    TEXT("SPARTA_JPEG_MODE", "jpeg-mode", "fast");
    TEXT("SPARTA_MAX_PIXELS", "max-pixels", "lots");
#undef TEXT
}

/* ---- images -------------------------------------------------------------- */

static void image_case(const char *input, const void *data, size_t len, uint64_t budget)
{
    spim_image img;
    spim_error err;
    spim_status st;
    spim__error_clear(&err);
    st = spim_image_decode(data, len, budget, &img, &err);
    row_err("image (object skipped)", input, st, &err);
    if (st == SPIM_OK) spim_image_free(&img);
}

static void image_file(const char *input, const char *path, size_t cut)
{
    spim_buf b = SPIM_BUF_INIT;
    if (spim_read_file(path, 0, &b, NULL) != SPIM_OK) {
        fprintf(stderr, "bad_inputs: cannot read %s\n", path);
        exit(1);
    }
    image_case(input, b.data + 2, b.len - 2 - (cut < b.len - 2 ? cut : 0), 1u << 20); /* the fuzz inputs start with 2 option bytes */
    spim_buf_free(&b);
}

static void images(void)
{
    spim_image img;
    spim_buf png = SPIM_BUF_INIT, jpg = SPIM_BUF_INIT;
    unsigned char px[64 * 48 * 3];
    spim_stamp stamp;
    spim_error err;
    spim_status st;
    size_t i;
    for (i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 7);
    memset(&img, 0, sizeof img);
    img.pixels = px;
    img.width = 64;
    img.height = 48;
    img.channels = 3;
    img.meta.orientation = 1;
    spim_image_encode(&img, SPIM_FORMAT_PNG, 0, &png, NULL);
    spim_image_encode(&img, SPIM_FORMAT_JPEG, 90, &jpg, NULL);

    image_case("empty object", "", 0, 0);
    image_case("a text file named .jpg", "hello, this is not an image\n", 28, 0);
    image_case("PNG cut in half", png.data, png.len / 2, 0);
    image_case("JPEG without its end (cut before EOI)", jpg.data, jpg.len - 40, 0);
    image_case("64x48 image over a budget of 1000 pixels (`SPARTA_MAX_PIXELS`)", png.data, png.len, 1000);
    {
        /* a PNG claiming 100000 x 100000 pixels, caught before decoding */
        spim_buf huge = SPIM_BUF_INIT;
        spim_buf_append(&huge, png.data, png.len);
        huge.data[16] = 0; huge.data[17] = 1; huge.data[18] = 0x86; huge.data[19] = 0xA0;
        huge.data[20] = 0; huge.data[21] = 1; huge.data[22] = 0x86; huge.data[23] = 0xA0;
        image_case("PNG header claiming 100000x100000 (decompression bomb)", huge.data, huge.len, 0);
        huge.data[35] = 0x7f; /* first chunk after IHDR: length past the end */
        huge.data[33] = 0x7f;
        spim_buf_reset(&huge);
        spim_buf_append(&huge, png.data, png.len);
        huge.data[33] = 0x7f;
        image_case("PNG chunk length past the end of the data", huge.data, huge.len, 0);
        spim_buf_free(&huge);
    }
    image_file("JPEG with a Huffman table of more than 256 codes (stb_image 2.27 overflow)",
               "tests/fuzz/regress/image/jpeg_dht_over_256_codes", 0);
    image_file("PNM whose width overflows an int", "tests/fuzz/regress/image/pnm_width_overflows_int", 0);
    image_file("PNM with fewer pixel bytes than its header declares",
               "tests/fuzz/regress/image/pnm_truncated_pixels_uninitialised", 0);
    image_file("PNM of 3x0 pixels", "tests/fuzz/regress/image/pnm_zero_height", 0);
    image_file("Radiance HDR cut short (stb_image 2.27 reads uninitialised memory)",
               "tests/fuzz/regress/image/hdr_short_flat_scanline_uninitialised", 0);
    image_case("GIF header only", "GIF89a\x02\x00\x02\x00\x80\x00\x00", 13, 0);

    spim__error_clear(&err);
    st = spim_stamp_load(&stamp, "not a png", 9, &err);
    row_err("configuration", "`SPARTA_STAMP` file is not an image", st, &err);
    spim__error_clear(&err);
    st = spim_stamp_load(&stamp, "P6 1 1 65535 \x01\x02\x03\x04\x05\x06", 19, &err);
    row_err("configuration", "`SPARTA_STAMP` is a 16-bit PPM (stb_image 2.27 overruns)", st, &err);
    if (st == SPIM_OK) spim_stamp_free(&stamp);
    spim_buf_free(&png);
    spim_buf_free(&jpg);
}

/* ---- S3 answers ---------------------------------------------------------- */

/* "HTTP/1.1 <status>\r\n<headers>Connection: close\r\nContent-Length: N\r\n\r\n<body>";
   len < 0 means Content-Length is the body's length. */
static char *http(const char *status, const char *headers, const char *body, long len)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_buf_appendf(&b, "HTTP/1.1 %s\r\n%sConnection: close\r\nContent-Length: %ld\r\n\r\n%s", status, headers,
                     len < 0 ? (long)strlen(body) : len, body);
    return (char *)b.data;
}

static void s3_case(const char *input, char *answer, size_t max_bytes, int op)
{
    const char *answers[1];
    size_t lens[1];
    server srv;
    spim_credentials creds;
    spim_s3_options o;
    spim_s3_client *c = NULL;
    spim_s3_object obj;
    spim_error err;
    spim_status st;
    char endpoint[64];
    answers[0] = answer;
    lens[0] = strlen(answer);
    srv = serve(answers, lens, 1);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", srv.port);
    memset(&creds, 0, sizeof creds);
    strcpy(creds.access_key_id, "AKIDEXAMPLE");
    strcpy(creds.secret_access_key, "secret");
    memset(&o, 0, sizeof o);
    o.credentials = &creds;
    o.endpoint = endpoint;
    o.max_attempts = 1;
    spim__no_sleep = 1;
    spim__error_clear(&err);
    if (spim_s3_client_create(&o, &c, &err) != SPIM_OK) {
        fprintf(stderr, "bad_inputs: %s\n", err.message);
        exit(1);
    }
    memset(&obj, 0, sizeof obj);
    if (op == 0) {
        st = spim_s3_get(c, "gallery", "uploads/cat.jpg", max_bytes, &obj, &err);
    } else if (op == 1) {
        st = spim_s3_put(c, "gallery", "xformed_uploads/cat.jpg", "x", 1, NULL, &obj, &err);
    } else {
        spim_s3_list *l = NULL;
        st = spim_s3_list_objects(c, "gallery", NULL, &l, &err);
        spim_s3_list_free(l);
    }
    row_err("S3 answer", input, st, &err);
    spim_s3_object_free(&obj);
    spim_s3_client_free(c);
    server_done(srv);
    free(answer);
}

static void s3_answers(void)
{
    spim_s3_client *c = NULL;
    spim_s3_options o;
    spim_credentials creds;
    spim_error err;
    spim_status st;
    spim_buf url = SPIM_BUF_INIT;
    s3_case("GET of a missing key (404 NoSuchKey)",
            http("404 Not Found", "Content-Type: application/xml\r\nx-amz-request-id: tx000-1\r\n",
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified "
                 "key does not exist.</Message><RequestId>tx000-1</RequestId></Error>", -1), 0, 0);
    s3_case("wrong secret key (403 SignatureDoesNotMatch)",
            http("403 Forbidden", "", "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we "
                 "calculated does not match the signature you provided.</Message></Error>", -1), 0, 0);
    s3_case("throttled on the last attempt (503 SlowDown)",
            http("503 Slow Down", "", "<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
                 "</Message></Error>", -1), 0, 1);
    s3_case("a proxy's HTML error page (502, no XML)",
            http("502 Bad Gateway", "Content-Type: text/html\r\n", "<html><body><h1>502 Bad Gateway</h1></body></html>", -1),
            0, 0);
    s3_case("object larger than the GET limit (Content-Length)",
            http("200 OK", "Content-Type: image/jpeg\r\n", "", 5000000), 1000, 0);
    s3_case("connection closed in the middle of the body",
            http("200 OK", "Content-Type: image/jpeg\r\n", "only a few bytes", 1000), 0, 0);
    s3_case("ListObjectsV2 answered by something else (200, an HTML page)",
            http("200 OK", "Content-Type: text/html\r\n", "<html><body>hello</body></html>", -1), 0, 2);
    s3_case("ListObjectsV2 with an undecodable key (`%zz`)",
            http("200 OK", "x-amz-request-id: tx000-2\r\n", "<ListBucketResult><EncodingType>url</EncodingType>"
                 "<Contents><Key>ok.jpg</Key><Size>1</Size></Contents><Contents><Key>bad%zz.jpg</Key><Size>1</Size>"
                 "</Contents></ListBucketResult>", -1), 0, 2);
    s3_case("ListObjectsV2 truncated without a continuation token",
            http("200 OK", "", "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", -1), 0, 2);
    {
        spim_buf ssh = SPIM_BUF_INIT;
        spim__buf_append_str(&ssh, "SSH-2.0-OpenSSH_9.2\r\n");
        s3_case("not HTTP at all", (char *)ssh.data, 0, 0);
    }

    memset(&creds, 0, sizeof creds);
    strcpy(creds.access_key_id, "AKIDEXAMPLE");
    strcpy(creds.secret_access_key, "secret");
    memset(&o, 0, sizeof o);
    o.credentials = &creds;
    o.endpoint = "http://127.0.0.1:1";
    o.max_attempts = 1;
    o.connect_timeout_ms = 2000;
    spim_s3_client_create(&o, &c, &err);
    spim__error_clear(&err);
    st = spim_s3_get(c, "gallery", "uploads/cat.jpg", 0, NULL, &err);
    row_err("S3 answer", "nothing listening at the endpoint", st, &err);
    spim__error_clear(&err);
    st = spim_s3_get(c, "gallery", "", 0, NULL, &err);
    row_err("S3 request", "empty object key", st, &err);
    spim__error_clear(&err);
    st = spim_s3_presign_get(c, "gallery", "uploads/cat.jpg", 700000, &url, &err);
    row_err("S3 request", "presigned URL valid for 700000 s (over 7 days)", st, &err);
    spim_buf_free(&url);
    spim_s3_client_free(c);
}

/* ---- the Runtime API ------------------------------------------------------ */

static spim_status echo_handler(const spim_invocation *inv, spim_response *resp, void *user)
{
    (void)user;
    return spim_response_ok(resp, inv->payload, inv->payload_len, NULL);
}

static spim_status big_handler(const spim_invocation *inv, spim_response *resp, void *user)
{
    (void)inv;
    (void)user;
    spim_buf_reserve(&resp->payload, 7u << 20);
    memset(resp->payload.data, 'x', 7u << 20);
    resp->payload.len = 7u << 20;
    resp->payload.data[resp->payload.len] = 0;
    return SPIM_OK;
}

static void runtime_case(const char *input, const char *const *answers, const size_t *lens, int n,
                         spim_handler handler)
{
    server srv = serve(answers, lens, n);
    spim__lambda_opts o;
    spim_error err;
    spim_status st;
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%d", srv.port);
    memset(&o, 0, sizeof o);
    o.runtime_api = api;
    o.max_invocations = 1;
    o.tries = 1;
    spim__error_clear(&err);
    st = spim__lambda_run(handler, NULL, &o, &err);
    row_err("Runtime API", input, st, &err);
    server_done(srv);
}

static void runtime(void)
{
    char *ok_post = http("202 Accepted", "", "{\"status\":\"OK\"}", -1), *too_large;
    const char *a[3];
    size_t l[3];
    spim__lambda_opts o;
    spim_error err;
    spim_status st;
    char *big;
    size_t n, hn;
#define ONE(input, text) do { a[0] = text; l[0] = strlen(text); runtime_case(input, a, l, 1, echo_handler); } while (0)
    ONE("`next` answers 500 (the environment is going away)",
        "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
    ONE("`next` without Lambda-Runtime-Aws-Request-Id",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
    ONE("request id that would change the URL path (`../x`)",
        "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: ../x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
    ONE("not HTTP at all", "garbage\r\n\r\n");

    /* a header over 16 KiB: the invocation is failed, the loop goes on */
    hn = 20000;
    big = (char *)malloc(hn + 512);
    n = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: id-1\r\nLambda-Runtime-Client-Context: ");
    memset(big + n, 'c', hn);
    n += hn;
    n += (size_t)sprintf(big + n, "\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
    a[0] = big; l[0] = n;
    a[1] = ok_post;
    l[1] = strlen(ok_post);
    runtime_case("`Lambda-Runtime-Client-Context` of 20000 bytes (answered with /error)", a, l, 2, echo_handler);
    free(big);

    a[0] = "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: id-2\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
    l[0] = strlen(a[0]);
    /* RIE's answer; the 413 closes the invocation, so nothing follows it */
    a[1] = too_large = http("413 Request Entity Too Large", "Content-Type: application/json\r\n",
                            "{\"errorMessage\":\"Exceeded maximum allowed payload size (6291556 bytes).\","
                            "\"errorType\":\"RequestEntityTooLarge\"}\n", -1);
    l[1] = strlen(a[1]);
    runtime_case("handler answer of 7 MiB (the API answers 413 and closes the invocation: nothing more is posted)",
                 a, l, 2, big_handler);
    free(too_large);
    free(ok_post);

    memset(&o, 0, sizeof o);
    o.runtime_api = "127.0.0.1:1";
    o.max_invocations = 1;
    o.tries = 2;
    o.retry_delay_ms = 1;
    spim__error_clear(&err);
    st = spim__lambda_run(echo_handler, NULL, &o, &err);
    row_err("Runtime API", "nothing listening at `AWS_LAMBDA_RUNTIME_API`", st, &err);
    o.runtime_api = "http://127.0.0.1:9001/";
    spim__error_clear(&err);
    st = spim__lambda_run(echo_handler, NULL, &o, &err);
    row_err("configuration", "`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:9001/`", st, &err);
    unsetenv("AWS_LAMBDA_RUNTIME_API");
    o.runtime_api = NULL;
    spim__error_clear(&err);
    st = spim__lambda_run(echo_handler, NULL, &o, &err);
    row_err("configuration", "`AWS_LAMBDA_RUNTIME_API` unset (outside Lambda, without `--event`)", st, &err);
#undef ONE
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    spim__log_set_level(SPIM_LOG_ERROR);
    spim__log_set_format(SPIM__LOG_JSON);
    spim__log.sink = log_sink;
    spim__log.sink_user = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    printf("# Bad inputs and what the user sees\n\n"
           "Generated by `build/fuzz/bad_inputs` (tests/fuzz/bad_inputs.c), which runs each\n"
           "input through the library and prints the status and the exact message. Event\n"
           "and record errors appear in the function's log and, for a failed invocation, in\n"
           "Lambda's error; an image problem skips that object; S3 and Runtime API\n"
           "problems are reported with the message below. Regenerate with\n"
           "`make build/fuzz/bad_inputs && build/fuzz/bad_inputs > tests/fuzz/BAD_INPUTS.md`.\n\n"
           "| area | input | status | message |\n|---|---|---|---|\n");
    events();
    credentials();
    client_config();
    stamp_options();
    images();
    s3_answers();
    runtime();
    printf("\n%d kinds of bad input.\n", rows);
    curl_global_cleanup();
    return 0;
}
