/* sparta_imager.h - v0.1 - S3 image stamping on AWS Lambda, in one C header.
   No warranty; MIT licensed (see end of file).

   WHAT IT IS
      Everything a Lambda function needs to stamp images uploaded to an S3
      bucket, as one stb-style header:

        1. an S3 event parser (direct, SQS, SNS and EventBridge envelopes)
        2. an AWS Signature Version 4 signer (headers and presigned URLs)
        3. an S3 client over libcurl (GET/PUT/HEAD/DELETE, retries, errors)
        4. an image pipeline: stb decode, exact alpha-blend stamp kernel
           (scalar, SSE2, AVX2, NEON), EXIF orientation, EXIF/ICC kept, encode
        5. the Lambda Runtime API loop (and a local `--event FILE` invoke)

   BUILD
      In exactly one C or C++ file, before any other #include:

         #define SPARTA_IMAGER_IMPLEMENTATION
         #include "sparta_imager.h"

      Compile with `pkg-config --cflags libcurl libcjson stb zlib`, link with
      `pkg-config --libs libcurl libcjson zlib` -lm (Debian: libcurl4-openssl-dev
      libcjson-dev libstb-dev zlib1g-dev). stb_image, stb_image_write and
      stb_image_resize are compiled inside the implementation, static.
      Other files include the header without the #define for declarations.

   EXAMPLE: a Lambda that stamps every uploaded image (examples/imager has
   the complete version: prefix, loop guard, deletes, configuration, logging)

      #define SPARTA_IMAGER_IMPLEMENTATION
      #include "sparta_imager.h"

      static spim_s3_client *s3;
      static spim_stamp stamp;              // spim_stamp_load(&stamp, png, len, &err) at init

      static spim_status handle(const spim_invocation *inv, spim_response *resp, void *user) {
          spim_event *ev; spim_error err; size_t i;
          if (spim_event_parse(inv->payload, inv->payload_len, NULL, &ev, &err) != SPIM_OK)
              return spim_response_fail(resp, "BadEvent", "%s", err.message), SPIM_ERR_INVALID;
          for (i = 0; i < ev->record_count; i++) {
              const spim_s3_record *r = &ev->records[i];
              spim_s3_object obj; spim_buf out = SPIM_BUF_INIT; spim_image_info info;
              if (r->kind != SPIM_EVENT_CREATED || r->status != SPIM_OK) continue;
              memset(&obj, 0, sizeof obj);
              if (spim_s3_get(s3, r->bucket, r->key, 64u << 20, &obj, &err) == SPIM_OK &&
                  spim_stamp_image(obj.body.data, obj.body.len, &stamp, NULL, &out, &info, &err) == SPIM_OK)
                  ... spim_s3_put(s3, r->bucket, "xformed_" + key, out.data, out.len, ...);
              spim_s3_object_free(&obj); spim_buf_free(&out);
          }
          spim_event_free(ev);
          return spim_response_ok(resp, "{}", 2, NULL);
      }
      int main(int argc, char **argv) { return spim_lambda_main(argc, argv, my_init, handle, NULL); }

   CONVENTIONS
      Public names start with spim_ / SPIM_, private ones with spim__.
      Functions return a spim_status (SPIM_OK is 0); those that can fail take
      a `spim_error *` (may be NULL) that receives a one-line reason, which
      never contains a secret or a signature. Options structs zero-initialised
      mean "defaults". Each parse/create has one matching free. Nothing calls
      exit() or abort(); every length read from the network or a file is
      checked before it is trusted.

   CONFIGURATION MACROS (define before the implementation include)
      SPARTA_IMAGER_STATIC        make every function static to that file
      SPIM_MALLOC(n), SPIM_REALLOC(p,n), SPIM_FREE(p)
                                  override the allocator (all three together);
                                  stb's allocations go through them too
      SPIM_NO_STB_IMPLEMENTATION  you compile stb_image/_write/_resize yourself

   ENVIRONMENT (read by the *_from_env helpers and spim_lambda_main)
      AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
      AWS_SESSION_TOKEN, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
      AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (custom endpoint, path-style),
      SSL_CERT_FILE, AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_LOG_FORMAT (Text|JSON),
      AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_FUNCTION_MEMORY_SIZE (pixel budget).

   LIMITS
      events      6 MB payload, 10000 records, keys 1024 bytes after decoding
      s3          GET size limit set per call; 3 attempts, full-jitter backoff
                  capped at 20 s; presigned URLs 1 s .. 7 days
      image       decode refused above the pixel budget before allocating:
                  (memory MiB - 24 MiB) / 5 bytes per pixel (21.8 MP at 128 MB)
      lambda      event 6 MB + 1 MiB margin, header values 16 KiB, Runtime
                  API connection retried 5 times (50 ms, doubling)
*/
#ifndef SPARTA_IMAGER_H
#define SPARTA_IMAGER_H

/* The implementation uses POSIX (clock_gettime, gmtime_r, sockets); in strict
   C99 mode it needs the feature macro before the first system header, so the
   implementation file should include this header first. */
#if defined(SPARTA_IMAGER_IMPLEMENTATION) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef SPARTA_IMAGER_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define SPIMDEF static __attribute__((unused)) /* a program need not call every function */
#else
#define SPIMDEF static
#endif
#else
#define SPIMDEF extern
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SPIM__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SPIM__PRINTF(f, a)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ==========================================================================
   base
   Status codes and their messages, the error record every call fills, a
   growable byte buffer, monotonic/UTC clocks and the Lambda-style logger.
   ========================================================================== */

typedef enum spim_status {
    SPIM_OK = 0,
    SPIM_ERR_NOMEM,        /* an allocation failed */
    SPIM_ERR_INVALID,      /* bad argument or malformed input */
    SPIM_ERR_TOO_LARGE,    /* input over a configured limit */
    SPIM_ERR_IO,           /* file system */
    SPIM_ERR_NETWORK,      /* connection, DNS, timeout: transient */
    SPIM_ERR_HTTP,         /* the server answered with an error status */
    SPIM_ERR_NOT_FOUND,    /* the object, bucket or file does not exist */
    SPIM_ERR_AUTH,         /* credentials missing or rejected */
    SPIM_ERR_IMAGE,        /* not an image, corrupt, or unsupported */
    SPIM_ERR_CONFIG,       /* bad configuration (environment, options) */
    SPIM_ERR_RUNTIME,      /* Lambda Runtime API protocol problem */
    SPIM_STATUS_COUNT
} spim_status;

#define SPIM_ERROR_MESSAGE_MAX 512

/* The reason for the last failure. `status` is SPIM_OK until something fails;
   `message` is one line, never containing a secret or a signature. */
typedef struct spim_error {
    spim_status status;
    int http_status;      /* HTTP status when one was received, else 0 */
    int transient;        /* 1 when retrying later may succeed */
    char message[SPIM_ERROR_MESSAGE_MAX];
} spim_error;

/* Short name of a status ("ok", "out of memory", ...). */
SPIMDEF const char *spim_status_str(spim_status status);

/* Record a failure in `err` (may be NULL) and return `status`. */
SPIMDEF spim_status spim_error_set(spim_error *err, spim_status status,
                                   const char *fmt, ...) SPIM__PRINTF(3, 4);
SPIMDEF void spim_error_clear(spim_error *err);

/* Growable byte buffer. `data` is always NUL-terminated once allocated, so
   text can be used as a C string. Start from SPIM_BUF_INIT (all zero). */
typedef struct spim_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} spim_buf;
#define SPIM_BUF_INIT { NULL, 0, 0 }

SPIMDEF spim_status spim_buf_reserve(spim_buf *b, size_t extra);
SPIMDEF spim_status spim_buf_append(spim_buf *b, const void *p, size_t n);
SPIMDEF spim_status spim_buf_append_str(spim_buf *b, const char *s);
SPIMDEF spim_status spim_buf_appendf(spim_buf *b, const char *fmt, ...) SPIM__PRINTF(2, 3);
SPIMDEF void spim_buf_reset(spim_buf *b);   /* len = 0, keeps the memory */
SPIMDEF void spim_buf_free(spim_buf *b);

/* Read a whole file (at most max_bytes; 0 = no limit) into `out`. */
SPIMDEF spim_status spim_read_file(const char *path, size_t max_bytes,
                                   spim_buf *out, spim_error *err);

/* Milliseconds from a monotonic clock; wall-clock milliseconds since 1970. */
SPIMDEF int64_t spim_now_ms(void);
SPIMDEF int64_t spim_wall_ms(void);

/* Logging, the way Lambda's managed runtimes do it: one line per event on
   stderr (stdout with SPIM_LOG_STDOUT), Text or JSON per
   AWS_LAMBDA_LOG_FORMAT, filtered by AWS_LAMBDA_LOG_LEVEL. */
typedef enum spim_log_level {
    SPIM_LOG_TRACE, SPIM_LOG_DEBUG, SPIM_LOG_INFO,
    SPIM_LOG_WARN, SPIM_LOG_ERROR, SPIM_LOG_FATAL, SPIM_LOG_OFF
} spim_log_level;

typedef enum spim_log_format { SPIM_LOG_TEXT, SPIM_LOG_JSON } spim_log_format;

/* Read AWS_LAMBDA_LOG_FORMAT (Text|JSON) and AWS_LAMBDA_LOG_LEVEL. */
SPIMDEF void spim_log_init_from_env(void);
SPIMDEF void spim_log_set_format(spim_log_format format);
SPIMDEF void spim_log_set_level(spim_log_level level);
SPIMDEF int  spim_log_enabled(spim_log_level level);
/* Request id stamped on every line until changed (NULL clears it). */
SPIMDEF void spim_log_set_request_id(const char *request_id);
/* Redirect log lines (NULL restores stderr). For tests and embedding. */
SPIMDEF void spim_log_set_sink(void (*sink)(const char *line, void *user), void *user);

SPIMDEF void spim_log(spim_log_level level, const char *fmt, ...) SPIM__PRINTF(2, 3);
/* A message plus key/value fields, NULL-terminated: ("stamped", "key", k,
   "ms", "12", NULL). In JSON a value that is a plain number is written as a
   number; in Text fields follow the message as key=value. */
SPIMDEF void spim_log_fields(spim_log_level level, const char *message, ...);

#include "parts/crypto.decl.h"
#include "parts/sigv4.decl.h"
#include "parts/s3.decl.h"
#include "parts/events.decl.h"
#include "parts/image.decl.h"
#include "parts/lambda.decl.h"

#ifdef __cplusplus
}
#endif
#endif /* SPARTA_IMAGER_H */

/* ######################################################################## */
/* #                          IMPLEMENTATION                               # */
/* ######################################################################## */
#if defined(SPARTA_IMAGER_IMPLEMENTATION) && !defined(SPIM__IMPLEMENTED)
#define SPIM__IMPLEMENTED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>
#include <time.h>
#include <limits.h>

#if defined(SPIM_MALLOC) && defined(SPIM_REALLOC) && defined(SPIM_FREE)
#elif !defined(SPIM_MALLOC) && !defined(SPIM_REALLOC) && !defined(SPIM_FREE)
#define SPIM_MALLOC(n) malloc(n)
#define SPIM_REALLOC(p, n) realloc(p, n)
#define SPIM_FREE(p) free(p)
#else
#error "define all of SPIM_MALLOC, SPIM_REALLOC and SPIM_FREE, or none"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ==========================================================================
   base
   ========================================================================== */

SPIMDEF const char *spim_status_str(spim_status status)
{
    static const char *const names[SPIM_STATUS_COUNT] = {
        "ok", "out of memory", "invalid input", "too large", "i/o error",
        "network error", "http error", "not found", "authentication failed",
        "bad image", "bad configuration", "runtime api error"
    };
    if ((int)status < 0 || status >= SPIM_STATUS_COUNT) return "unknown status";
    return names[status];
}

SPIMDEF spim_status spim_error_set(spim_error *err, spim_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

SPIMDEF void spim_error_clear(spim_error *err)
{
    if (err) memset(err, 0, sizeof *err);
}

SPIMDEF spim_status spim_buf_reserve(spim_buf *b, size_t extra)
{
    size_t need, cap;
    unsigned char *p;
    if (extra > (size_t)-1 - b->len - 1) return SPIM_ERR_NOMEM;
    need = b->len + extra + 1;           /* +1 keeps room for the NUL */
    if (need <= b->cap) return SPIM_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = (unsigned char *)SPIM_REALLOC(b->data, cap);
    if (!p) return SPIM_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = 0;
    return SPIM_OK;
}

SPIMDEF spim_status spim_buf_append(spim_buf *b, const void *p, size_t n)
{
    if (spim_buf_reserve(b, n) != SPIM_OK) return SPIM_ERR_NOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return SPIM_OK;
}

SPIMDEF spim_status spim_buf_append_str(spim_buf *b, const char *s)
{
    return spim_buf_append(b, s, strlen(s));
}

SPIMDEF spim_status spim_buf_appendf(spim_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    char small[256];
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return SPIM_ERR_INVALID;
    if ((size_t)n < sizeof small) return spim_buf_append(b, small, (size_t)n);
    if (spim_buf_reserve(b, (size_t)n) != SPIM_OK) return SPIM_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SPIM_OK;
}

SPIMDEF void spim_buf_reset(spim_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

SPIMDEF void spim_buf_free(spim_buf *b)
{
    SPIM_FREE(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

SPIMDEF spim_status spim_read_file(const char *path, size_t max_bytes, spim_buf *out, spim_error *err)
{
    FILE *f = fopen(path, "rb");
    unsigned char chunk[65536];
    size_t n;
    if (!f) {
        return spim_error_set(err, errno == ENOENT ? SPIM_ERR_NOT_FOUND : SPIM_ERR_IO,
                              "cannot open %s: %s", path, strerror(errno));
    }
    spim_buf_reset(out);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (max_bytes && out->len + n > max_bytes) {
            fclose(f);
            return spim_error_set(err, SPIM_ERR_TOO_LARGE, "%s is larger than %zu bytes",
                                  path, max_bytes);
        }
        if (spim_buf_append(out, chunk, n) != SPIM_OK) {
            fclose(f);
            return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory reading %s", path);
        }
    }
    if (ferror(f)) {
        fclose(f);
        return spim_error_set(err, SPIM_ERR_IO, "error reading %s", path);
    }
    fclose(f);
    if (!out->data && spim_buf_reserve(out, 0) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory reading %s", path);
    return SPIM_OK;
}

SPIMDEF int64_t spim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

SPIMDEF int64_t spim_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- logger ------------------------------------------------------------ */

static struct {
    spim_log_level level;
    spim_log_format format;
    char request_id[128];
    void (*sink)(const char *line, void *user);
    void *sink_user;
} spim__log = { SPIM_LOG_INFO, SPIM_LOG_TEXT, "", NULL, NULL };

static const char *const spim__log_names[] = { "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF" };

static int spim__strieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

SPIMDEF void spim_log_init_from_env(void)
{
    const char *fmt = getenv("AWS_LAMBDA_LOG_FORMAT");
    const char *lvl = getenv("AWS_LAMBDA_LOG_LEVEL");
    int i;
    spim__log.format = (fmt && spim__strieq(fmt, "JSON")) ? SPIM_LOG_JSON : SPIM_LOG_TEXT;
    if (lvl)
        for (i = 0; i <= SPIM_LOG_OFF; i++)
            if (spim__strieq(lvl, spim__log_names[i])) spim__log.level = (spim_log_level)i;
}

SPIMDEF void spim_log_set_format(spim_log_format format) { spim__log.format = format; }
SPIMDEF void spim_log_set_level(spim_log_level level) { spim__log.level = level; }
SPIMDEF int spim_log_enabled(spim_log_level level) { return level >= spim__log.level && level < SPIM_LOG_OFF; }

SPIMDEF void spim_log_set_request_id(const char *request_id)
{
    snprintf(spim__log.request_id, sizeof spim__log.request_id, "%s", request_id ? request_id : "");
}

SPIMDEF void spim_log_set_sink(void (*sink)(const char *line, void *user), void *user)
{
    spim__log.sink = sink;
    spim__log.sink_user = user;
}

/* JSON string body (no quotes), control characters escaped. */
static void spim__json_escape(spim_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { spim_buf_appendf(b, "\\%c", c); }
        else if (c == '\n') spim_buf_append_str(b, "\\n");
        else if (c == '\r') spim_buf_append_str(b, "\\r");
        else if (c == '\t') spim_buf_append_str(b, "\\t");
        else if (c < 0x20) spim_buf_appendf(b, "\\u%04x", c);
        else spim_buf_append(b, &c, 1);
    }
}

static int spim__is_json_number(const char *s)
{
    char *end;
    if (!*s || isspace((unsigned char)*s)) return 0;
    if (*s == '+' || (s[0] == '0' && isdigit((unsigned char)s[1]))) return 0;
    (void)strtod(s, &end);
    return *end == 0 && !strpbrk(s, "xXnNiI"); /* no hex, nan, inf */
}

static void spim__log_emit(spim_log_level level, const char *message, va_list *fields)
{
    spim_buf line = SPIM_BUF_INIT;
    const char *k, *v;
    int64_t now = spim_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    char ts[96];
    gmtime_r(&secs, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000));
    if (spim__log.format == SPIM_LOG_JSON) {
        spim_buf_appendf(&line, "{\"timestamp\":\"%s\",\"level\":\"%s\"", ts, spim__log_names[level]);
        if (spim__log.request_id[0]) {
            spim_buf_append_str(&line, ",\"requestId\":\"");
            spim__json_escape(&line, spim__log.request_id);
            spim_buf_append_str(&line, "\"");
        }
        spim_buf_append_str(&line, ",\"message\":\"");
        spim__json_escape(&line, message);
        spim_buf_append_str(&line, "\"");
        while (fields && (k = va_arg(*fields, const char *)) != NULL) {
            v = va_arg(*fields, const char *);
            if (!v) v = "";
            spim_buf_append_str(&line, ",\"");
            spim__json_escape(&line, k);
            spim_buf_append_str(&line, "\":");
            if (spim__is_json_number(v)) spim_buf_append_str(&line, v);
            else {
                spim_buf_append_str(&line, "\"");
                spim__json_escape(&line, v);
                spim_buf_append_str(&line, "\"");
            }
        }
        spim_buf_append_str(&line, "}");
    } else {
        spim_buf_appendf(&line, "%s %s", ts, spim__log_names[level]);
        if (spim__log.request_id[0]) spim_buf_appendf(&line, " %s", spim__log.request_id);
        spim_buf_appendf(&line, " %s", message);
        while (fields && (k = va_arg(*fields, const char *)) != NULL) {
            v = va_arg(*fields, const char *);
            spim_buf_appendf(&line, strpbrk(v ? v : "", " \"=") ? " %s=\"%s\"" : " %s=%s", k, v ? v : "");
        }
        /* a log event is one line: fold newlines from the message */
        for (k = (const char *)line.data; line.data && *k; k++)
            if (*k == '\n' || *k == '\r') line.data[k - (const char *)line.data] = ' ';
    }
    if (!line.data) return; /* out of memory: drop the line rather than fail */
    if (spim__log.sink) spim__log.sink((const char *)line.data, spim__log.sink_user);
    else {
        fprintf(stderr, "%s\n", (const char *)line.data);
        fflush(stderr);
    }
    spim_buf_free(&line);
}

SPIMDEF void spim_log(spim_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    if (!spim_log_enabled(level)) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    spim__log_emit(level, msg, NULL);
}

SPIMDEF void spim_log_fields(spim_log_level level, const char *message, ...)
{
    va_list ap;
    if (!spim_log_enabled(level)) return;
    va_start(ap, message);
    spim__log_emit(level, message, &ap);
    va_end(ap);
}

#ifdef __cplusplus
}
#endif

#include "parts/crypto.impl.h"
#include "parts/sigv4.impl.h"
#include "parts/s3.impl.h"
#include "parts/events.impl.h"
#include "parts/image.impl.h"
#include "parts/lambda.impl.h"

#endif /* SPARTA_IMAGER_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License
Copyright (c) 2026 the sparta_imager authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
