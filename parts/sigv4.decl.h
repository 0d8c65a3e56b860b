/* ==========================================================================
   sigv4
   AWS Signature Version 4: canonical request, string to sign, signing key,
   the Authorization header, and presigned URLs. Pure functions of their
   inputs (the signing time is a parameter): no clock, no global state.
   ========================================================================== */

#define SPIM_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SPIM_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
#define SPIM_PRESIGN_MAX_EXPIRES 604800 /* seven days, S3's limit */

typedef struct spim_credentials {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096];  /* empty when not using temporary credentials */
} spim_credentials;

typedef struct spim_header {
    const char *name;
    const char *value;
} spim_header;

typedef enum spim_sigv4_mode {
    /* Generic SigV4 (every service but S3): the path is normalised
       (`.`/`..`/`//` resolved) and each segment URI-encoded again. */
    SPIM_SIGV4_GENERIC = 0,
    /* S3: the path is used as sent (encoded once, no normalisation) and
       x-amz-content-sha256 is always sent and signed. */
    SPIM_SIGV4_S3
} spim_sigv4_mode;

/* What to sign. The URL is as it goes on the wire: the path already
   percent-encoded once (spim_uri_encode with keep_slash), the query string
   as sent. `host` is taken from a Host header if given, else from the URL
   (with its port when not the scheme's default). Never signed, though sent:
   user-agent, expect, transfer-encoding, connection, x-amzn-trace-id and
   authorization (proxies and clients rewrite them). */
typedef struct spim_sigv4_request {
    const char *method;             /* "GET", "PUT", ... */
    const char *url;                /* "https://bucket.s3.us-east-1.amazonaws.com/a%20b.jpg?x=1" */
    const spim_header *headers;     /* headers to send and sign, any case, duplicates allowed */
    size_t header_count;
    const void *body;               /* hashed when no payload hash is given */
    size_t body_len;
    /* hex SHA-256, SPIM_UNSIGNED_PAYLOAD, SPIM_STREAMING_PAYLOAD, ...; NULL =
       an x-amz-content-sha256 header's value if sent, else UNSIGNED-PAYLOAD
       for an S3 presigned URL, else the SHA-256 of the body */
    const char *payload_hash;
} spim_sigv4_request;

typedef struct spim_sigv4_params {
    const spim_credentials *credentials;
    const char *region;             /* "us-east-1" */
    const char *service;            /* "s3" */
    int64_t time;                   /* signing time, seconds since 1970 (UTC) */
    spim_sigv4_mode mode;
    long expires;                   /* presign only: 1..604800 seconds */
    unsigned flags;                 /* SPIM_SIGV4_* below; 0 = what `mode` implies */
} spim_sigv4_params;

/* Flags for services whose rules differ from the two modes (and for the AWS
   test suites, whose context.json switches exactly these). */
#define SPIM_SIGV4_NO_NORMALIZE      1u /* generic: keep `.`/`..`/`//` (still encoded again) */
#define SPIM_SIGV4_SIGN_CONTENT_SHA256 2u /* generic: also send and sign x-amz-content-sha256 */
#define SPIM_SIGV4_OMIT_SESSION_TOKEN 4u /* add the session token after signing, unsigned */

/* The result of signing. `add_headers` are the headers the caller must send
   in addition to its own: X-Amz-Date, X-Amz-Content-Sha256 (S3 mode),
   X-Amz-Security-Token (with a session token) when the request did not carry
   them, and Authorization last. The intermediate strings are kept for tests
   and debugging (they hold no secret). */
typedef struct spim_sigv4_result {
    spim_buf canonical_request;
    spim_buf string_to_sign;
    char signature[SPIM_SHA256_HEX_SIZE];
    char amz_date[17];                    /* 20130524T000000Z */
    char payload_hash[SPIM_SHA256_HEX_SIZE + 32];
    spim_buf authorization;               /* value of the Authorization header */
    spim_buf signed_headers;              /* "host;x-amz-date" */
    spim_header add_headers[4];
    size_t add_header_count;
    spim_buf storage;                     /* owns the add_headers strings */
} spim_sigv4_result;

/* Sign for header authentication. `out` is initialised here (not freed: pass
   a fresh or freed one); free it with spim_sigv4_result_free, also after a
   failure. An X-Amz-Date header in the request must equal params->time. */
SPIMDEF spim_status spim_sigv4_sign(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                    spim_sigv4_result *out, spim_error *err);

/* Presigned URL into url_out (replacing its contents): the request's own
   query parameters, re-encoded, then X-Amz-Algorithm, -Credential, -Date,
   -Expires, -SignedHeaders, -Security-Token (signed unless
   SPIM_SIGV4_OMIT_SESSION_TOKEN) and X-Amz-Signature last. S3 mode signs
   UNSIGNED-PAYLOAD. params->expires must be 1..604800 (SPIM_ERR_INVALID
   otherwise). `out` receives the intermediate strings; may be NULL. */
SPIMDEF spim_status spim_sigv4_presign(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                       spim_buf *url_out, spim_sigv4_result *out, spim_error *err);

SPIMDEF void spim_sigv4_result_free(spim_sigv4_result *out);

/* RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - . _ ~ (and '/'
   when keep_slash) becomes %XX with upper-case hex. */
SPIMDEF spim_status spim_uri_encode(spim_buf *out, const char *s, size_t len, int keep_slash);

/* "20130524T000000Z" for a time in seconds since 1970. */
SPIMDEF void spim_amz_date(int64_t time, char out[17]);

/* The SigV4 signing key: HMAC chain over "AWS4"+secret, the date
   ("20130524"), region, service and "aws4_request". */
SPIMDEF void spim_sigv4_signing_key(const char *secret_access_key, const char *date8,
                                    const char *region, const char *service,
                                    unsigned char out[SPIM_SHA256_SIZE]);

/* Canonical query string of a query as sent on the wire (no leading '?'):
   each name and value percent-decoded, re-encoded per RFC 3986, sorted by
   name then value; a bare name becomes `name=`. Appends to `out`. */
SPIMDEF spim_status spim_sigv4_canonical_query(spim_buf *out, const char *query, size_t len);
