/* ==========================================================================
   s3
   An S3 client over libcurl: credentials (environment, shared file), region
   and endpoint/addressing, GET/PUT/HEAD/DELETE/CreateBucket and presigned
   GET URLs, S3 error XML, and AWS "standard" retries with clock-skew repair.
   ========================================================================== */

/* libcurl: spim_s3_client_create calls curl_global_init and
   spim_s3_client_free calls curl_global_cleanup. Both are reference counted
   and thread-safe since libcurl 7.84; with an older libcurl call
   curl_global_init(CURL_GLOBAL_DEFAULT) once at startup, before any thread,
   so that the client's calls only adjust the count. A client owns one curl
   easy handle (connections are kept alive between requests) and must be
   used by one thread at a time. */

#define SPIM_S3_DEFAULT_REGION "us-east-1"
#define SPIM_S3_CREDENTIALS_FILE_MAX (1u << 20) /* bigger shared files are refused */
#define SPIM_S3_MAX_METADATA 64                 /* x-amz-meta-* entries kept per response */

/* Client options; all zero means "everything from the environment".
   Strings are copied by spim_s3_client_create. */
typedef struct spim_s3_options {
    const spim_credentials *credentials; /* NULL: AWS_ACCESS_KEY_ID/... then the shared file */
    const char *region;           /* NULL: AWS_REGION, AWS_DEFAULT_REGION, "us-east-1" */
    const char *endpoint;         /* NULL: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS.
                                     "http[s]://host[:port]"; a custom endpoint is path-style */
    int force_path_style;         /* 1: path-style even on AWS */
    int max_attempts;             /* 0: 3 (AWS standard mode); 1 disables retries */
    long backoff_base_ms;         /* 0: 1000 (sleep up to base*2^n, full jitter, <= 20 s);
                                     negative: retry without sleeping (tests) */
    long connect_timeout_ms;      /* 0: 10000 */
    long low_speed_time_s;        /* abort an attempt under 1 byte/s for this long; 0: 30
                                     (curl averages over 5 s, so a stall shows after ~5 s more) */
    long timeout_ms;              /* limit on a whole attempt; 0: none (e.g. the Lambda deadline) */
    int64_t clock_offset_s;       /* added to the local clock when signing (tests) */
    const char *ca_file;          /* PEM CA bundle for TLS; NULL: $SSL_CERT_FILE, else libcurl's
                                     built-in one if present, else the first of the usual
                                     places (AL2023: /etc/pki/tls/certs/ca-bundle.crt) */
} spim_s3_options;

typedef struct spim_s3_client spim_s3_client;

/* A response. Every field is filled as far as the server answered, also on
   failure (http_status, request_id). Free with spim_s3_object_free. */
typedef struct spim_s3_object {
    int http_status;
    char content_type[256];
    char etag[256];               /* as sent by S3, quotes included */
    int64_t content_length;       /* -1 when the server sent none */
    char request_id[128];
    spim_header metadata[SPIM_S3_MAX_METADATA]; /* name lower-cased without "x-amz-meta-" */
    size_t metadata_count;
    spim_buf body;                /* GET only; never NULL after a successful GET */
} spim_s3_object;

/* PUT options; zero means application/octet-stream and no metadata. */
typedef struct spim_s3_put_options {
    const char *content_type;
    const spim_header *metadata;  /* names without "x-amz-meta-"; ASCII values */
    size_t metadata_count;
} spim_s3_put_options;

/* S3's <Error> document: Code, Message, RequestId (empty when absent). */
typedef struct spim_s3_error_info {
    char code[64];
    char message[256];
    char request_id[128];
} spim_s3_error_info;

/* ---- client ------------------------------------------------------------- */

/* Create a client (opts may be NULL). Fails with SPIM_ERR_AUTH when no
   credentials are found (the message names what was looked at) and
   SPIM_ERR_CONFIG for a malformed region or endpoint. */
SPIMDEF spim_status spim_s3_client_create(const spim_s3_options *opts, spim_s3_client **out,
                                          spim_error *err);
/* The same with every setting from the environment. */
SPIMDEF spim_status spim_s3_client_create_from_env(spim_s3_client **out, spim_error *err);
SPIMDEF void spim_s3_client_free(spim_s3_client *client);
SPIMDEF const char *spim_s3_client_region(const spim_s3_client *client);
/* Seconds added to the local clock when signing: the option, or what the
   client learnt from a server's Date after a clock-skew error. */
SPIMDEF int64_t spim_s3_client_clock_offset(const spim_s3_client *client);
/* The CA bundle the client gives libcurl; "" means libcurl's built-in default. */
SPIMDEF const char *spim_s3_client_ca_file(const spim_s3_client *client);

/* ---- operations ----------------------------------------------------------
   bucket and key are raw strings (the key UTF-8, any bytes but NUL); the
   client percent-encodes them once. `out` may be NULL where noted; an `out`
   starts zeroed (memset) or from an earlier call, is reset by the call, and
   is freed with spim_s3_object_free. */

/* GET into out->body. Objects over max_bytes (0: no limit) fail with
   SPIM_ERR_TOO_LARGE: before the body is read when Content-Length says so,
   else as soon as the bytes received pass the limit. */
SPIMDEF spim_status spim_s3_get(spim_s3_client *client, const char *bucket, const char *key,
                                size_t max_bytes, spim_s3_object *out, spim_error *err);
/* PUT data (signed payload hash, known Content-Length); out may be NULL. */
SPIMDEF spim_status spim_s3_put(spim_s3_client *client, const char *bucket, const char *key,
                                const void *data, size_t len, const spim_s3_put_options *opts,
                                spim_s3_object *out, spim_error *err);
/* HEAD: status, type, length, ETag, metadata; a 404 is SPIM_ERR_NOT_FOUND. */
SPIMDEF spim_status spim_s3_head(spim_s3_client *client, const char *bucket, const char *key,
                                 spim_s3_object *out, spim_error *err);
/* DELETE (S3 answers 204 whether or not the key existed). */
SPIMDEF spim_status spim_s3_delete(spim_s3_client *client, const char *bucket, const char *key,
                                   spim_error *err);
/* CreateBucket in the client's region. A bucket that already exists and is
   yours (BucketAlreadyOwnedByYou) counts as success. */
SPIMDEF spim_status spim_s3_create_bucket(spim_s3_client *client, const char *bucket,
                                          spim_error *err);
/* Presigned GET URL valid for expires_s seconds (1..SPIM_PRESIGN_MAX_EXPIRES). */
SPIMDEF spim_status spim_s3_presign_get(spim_s3_client *client, const char *bucket,
                                        const char *key, long expires_s, spim_buf *url_out,
                                        spim_error *err);

SPIMDEF void spim_s3_object_free(spim_s3_object *obj);
/* Value of a user metadata entry (name without "x-amz-meta-", any case), or NULL. */
SPIMDEF const char *spim_s3_object_meta(const spim_s3_object *obj, const char *name);

/* ---- the pieces, public for tests and fuzzing ------------------------------ */

/* Credentials from the environment, then the shared credentials file
   (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials; profile
   AWS_PROFILE, default "default"). */
SPIMDEF spim_status spim_s3_credentials_from_env(spim_credentials *out, spim_error *err);
/* Parse an INI credentials file held in memory (len bytes, no NUL needed):
   [profile] sections, key = value, '#'/';' comments, any whitespace.
   SPIM_ERR_NOT_FOUND when the profile is absent; SPIM_ERR_CONFIG when it
   lacks a key or a value is malformed; SPIM_ERR_TOO_LARGE over
   SPIM_S3_CREDENTIALS_FILE_MAX. */
SPIMDEF spim_status spim_s3_parse_credentials(const char *data, size_t len, const char *profile,
                                              spim_credentials *out, spim_error *err);

/* 1 when a bucket name can be a DNS label: 3-63 of [a-z0-9-], starting and
   ending with a letter or digit (no dots: TLS wildcards would not match). */
SPIMDEF int spim_s3_bucket_is_virtual_host_ok(const char *bucket);
/* The request URL for bucket/key (key may be NULL or "" for the bucket). */
SPIMDEF spim_status spim_s3_object_url(const spim_s3_client *client, const char *bucket,
                                       const char *key, spim_buf *out, spim_error *err);

/* Parse an S3 <Error> body; tolerant of any garbage. Returns 1 when a
   Code was found. Entities &amp; &lt; &gt; &quot; &apos; are decoded. */
SPIMDEF int spim_s3_parse_error(const char *xml, size_t len, spim_s3_error_info *out);
/* The status an S3 failure maps to (http_status 0 = transport failure). */
SPIMDEF spim_status spim_s3_status_for(int http_status, const char *code);
/* 1 when AWS standard mode retries it: transport failures, 500/502/503/504,
   SlowDown, InternalError, RequestTimeout, Throttling and friends. */
SPIMDEF int spim_s3_is_retryable(int http_status, const char *code);
/* 1 when the failure says our clock is off: RequestTimeTooSkewed,
   RequestExpired, or SignatureDoesNotMatch while the server's Date is more
   than 4 minutes from ours (times in seconds; server_time 0 = unknown). */
SPIMDEF int spim_s3_is_clock_skew(const char *code, int64_t server_time, int64_t our_time);
/* Seconds since 1970 from an RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994
   08:49:37 GMT"); 0 when malformed. */
SPIMDEF int64_t spim_s3_parse_http_date(const char *s);
