/* ==========================================================================
   lambda
   The Lambda Runtime API loop (2018-06-01): next event, handler, response
   or error; init errors; `--event FILE` runs the handler once locally.
   One handler signature, one invocation struct, one response struct.
   ========================================================================== */

/* Limits on what the Runtime API may send us (6 MB payload + margin). */
#define SPIM_LAMBDA_PAYLOAD_MAX (6291456u + 1048576u)
#define SPIM_LAMBDA_HEADER_MAX 16384u   /* one header value */
#define SPIM_LAMBDA_REQUEST_ID_MAX 127u /* also fits the logger's request id */

/* One invocation. Strings are NUL-terminated and live until the handler
   returns; the optional ones are NULL when Lambda did not send them. */
typedef struct spim_invocation {
    const char *payload;          /* the event, usually JSON */
    size_t payload_len;
    const char *request_id;       /* Lambda-Runtime-Aws-Request-Id */
    int64_t deadline_ms;          /* epoch ms (Lambda-Runtime-Deadline-Ms); 0 unknown */
    const char *function_arn;     /* Lambda-Runtime-Invoked-Function-Arn */
    const char *trace_id;         /* Lambda-Runtime-Trace-Id, also in $_X_AMZN_TRACE_ID */
    const char *client_context;   /* Lambda-Runtime-Client-Context */
    const char *cognito_identity; /* Lambda-Runtime-Cognito-Identity */
    const char *tenant_id;        /* Lambda-Runtime-Aws-Tenant-Id */
} spim_invocation;

/* Milliseconds left before the deadline (0 once passed; INT64_MAX if unknown). */
SPIMDEF int64_t spim_invocation_remaining_ms(const spim_invocation *inv);

/* What the handler answers. The runtime clears it before each call and
   keeps its memory between invocations. */
typedef struct spim_response {
    spim_buf payload;             /* success body: fill with spim_response_ok or append */
    char content_type[128];       /* "" means application/json */
    int failed;                   /* set by spim_response_fail */
    char error_type[64];
    char error_message[SPIM_ERROR_MESSAGE_MAX];
} spim_response;

/* Answer with a copy of `payload` (content_type NULL = application/json;
   it must be a single header value shorter than 128 bytes). */
SPIMDEF spim_status spim_response_ok(spim_response *resp, const void *payload, size_t len,
                                     const char *content_type);
/* Answer with a failure: errorType `error_type` (NULL = "Error") and a
   one-line message. Lambda gets {"errorMessage","errorType","stackTrace"}
   and the header Lambda-Runtime-Function-Error-Type: Function.<error_type>
   (or error_type itself when it already reads Function.X / Runtime.X). */
SPIMDEF void spim_response_fail(spim_response *resp, const char *error_type,
                                const char *fmt, ...) SPIM__PRINTF(3, 4);

/* The handler. Return SPIM_OK after spim_response_ok (an untouched response
   is an empty success); any other status, or a call to spim_response_fail,
   fails the invocation (errorType "Error" and the status name when the
   handler did not call spim_response_fail). */
typedef spim_status (*spim_handler)(const spim_invocation *inv, spim_response *resp, void *user);

/* Run once before the first invocation; a failure becomes /init/error
   (Runtime.ConfigInvalid for SPIM_ERR_CONFIG, else Runtime.InitError). */
typedef spim_status (*spim_lambda_init_fn)(void *user, spim_error *err);

typedef struct spim_lambda_opts {
    const char *runtime_api;      /* host:port; NULL = $AWS_LAMBDA_RUNTIME_API */
    long max_invocations;         /* return SPIM_OK after this many (0 = never) */
    int tries;                    /* attempts per request on connection errors (0 = 5) */
    int retry_delay_ms;           /* first backoff, doubled each retry (0 = 50) */
} spim_lambda_opts;

/* The Runtime API loop. Needs curl_global_init() done (spim_lambda_main
   does it). Returns only on max_invocations (SPIM_OK) or a fatal error: the
   API unreachable after the retries (SPIM_ERR_NETWORK), a 500 from it or a
   protocol violation (SPIM_ERR_RUNTIME); the caller should then exit. */
SPIMDEF spim_status spim_lambda_run(spim_handler handler, void *user,
                                    const spim_lambda_opts *opts, spim_error *err);

/* The whole main() of a function: `prog --event FILE` runs init and the
   handler once and prints the result payload (or the error JSON) on stdout;
   otherwise runs init and the loop against $AWS_LAMBDA_RUNTIME_API. Calls
   curl_global_init once. `init` may be NULL. Returns the exit status: 0 ok,
   1 failure (handler failure with --event, init failure, fatal loop error),
   2 usage. */
SPIMDEF int spim_lambda_main(int argc, char **argv, spim_lambda_init_fn init,
                             spim_handler handler, void *user);

/* {"errorMessage":...,"errorType":...,"stackTrace":[]} appended to `out`;
   invalid UTF-8 becomes U+FFFD so the body is always valid JSON. */
SPIMDEF spim_status spim_lambda_error_json(spim_buf *out, const char *error_type,
                                           const char *message);
