/* ==========================================================================
   events
   Parses what Lambda hands the function when S3 reports a change: direct S3
   notifications, and the same wrapped in SQS, SNS, SNS-in-SQS or EventBridge,
   into plain records (kind, bucket, URL-decoded key, ...) that outlive cJSON.
   ========================================================================== */

/* In a handler:
      spim_event *ev;
      size_t i;
      if (spim_event_parse(payload, len, NULL, &ev, &err) != SPIM_OK) return err.status;
      for (i = 0; i < ev->record_count; i++) {
          const spim_s3_record *r = &ev->records[i];
          if (r->status != SPIM_OK) spim_log(SPIM_LOG_WARN, "skipped: %s", r->error);
          else if (r->kind == SPIM_EVENT_CREATED) stamp(r->bucket, r->key);
          else if (r->kind == SPIM_EVENT_REMOVED) unstamp(r->bucket, r->key);
      }
      spim_event_free(ev);
*/

#define SPIM_EVENT_MAX_INPUT   ((size_t)6 * 1024 * 1024) /* Lambda's payload limit */
#define SPIM_EVENT_MAX_RECORDS ((size_t)10000)
#define SPIM_S3_MAX_KEY        ((size_t)1024)             /* bytes, after decoding */

/* What happened to the object, from eventName (with or without "s3:"). */
typedef enum spim_event_kind {
    SPIM_EVENT_OTHER = 0,  /* restore, replication, tagging, ACL, transition... */
    SPIM_EVENT_CREATED,    /* ObjectCreated:Put, Post, Copy, CompleteMultipartUpload */
    SPIM_EVENT_REMOVED,    /* ObjectRemoved:*, LifecycleExpiration:* */
    SPIM_EVENT_TEST        /* s3:TestEvent (the TestEvent message itself adds no
                              record, only spim_event.test_events) */
} spim_event_kind;

/* How a record reached the function: the outermost envelope. */
typedef enum spim_event_source {
    SPIM_SOURCE_DIRECT = 0,   /* S3 invoked the function itself */
    SPIM_SOURCE_SQS,
    SPIM_SOURCE_SNS,
    SPIM_SOURCE_EVENTBRIDGE
} spim_event_source;

/* Bits of spim_s3_record.via: every envelope the record was found in. */
#define SPIM_VIA_SQS         1u
#define SPIM_VIA_SNS         2u
#define SPIM_VIA_EVENTBRIDGE 4u

/* One S3 change. Every string is NUL-terminated, owned by the spim_event,
   and "" (never NULL) when the event did not carry the field. Comments name
   the field of the S3 notification; EventBridge fields map onto the same. */
typedef struct spim_s3_record {
    spim_event_kind kind;
    const char *name;             /* normalised eventName: "ObjectCreated:Put" */
    spim_event_source source;
    unsigned via;                 /* SPIM_VIA_* bits */
    const char *message_id;       /* outermost envelope's message id (SQS messageId
                                     for batchItemFailures), "" for direct events */
    spim_status status;           /* SPIM_OK, or why this record is unusable */
    const char *error;            /* "" or one line saying which field and why */

    const char *bucket;           /* s3.bucket.name */
    const char *key;              /* s3.object.key, URL-decoded; "" on error */
    size_t key_len;
    const char *key_raw;          /* the key as sent */
    int64_t size;                 /* s3.object.size, -1 when absent (removals) */
    const char *etag;             /* s3.object.eTag */
    const char *version_id;       /* s3.object.versionId */
    const char *sequencer;        /* s3.object.sequencer */

    const char *event_version;    /* eventVersion (detail.event-version, else detail.version) */
    const char *event_source;     /* eventSource: "aws:s3" (EventBridge: "aws.s3") */
    const char *aws_region;       /* awsRegion */
    const char *event_time;       /* eventTime, ISO-8601 */
    const char *event_name;       /* eventName as sent (EventBridge: detail-type) */
    const char *principal_id;     /* userIdentity.principalId (detail.requester) */
    const char *source_ip;        /* requestParameters.sourceIPAddress */
    const char *request_id;       /* responseElements.x-amz-request-id */
    const char *host_id;          /* responseElements.x-amz-id-2 */
    const char *schema_version;   /* s3.s3SchemaVersion */
    const char *configuration_id; /* s3.configurationId */
    const char *bucket_owner;     /* s3.bucket.ownerIdentity.principalId (account) */
    const char *bucket_arn;       /* s3.bucket.arn (resources[0]) */
    const char *reason;           /* EventBridge detail.reason ("PutObject"), else "" */
} spim_s3_record;

/* A parsed invocation payload; release it with spim_event_free. */
typedef struct spim_event {
    size_t record_count;
    spim_s3_record *records;
    int test_events;              /* s3:TestEvent messages seen (they carry no records) */
    void *spim__arena;            /* private: storage for the strings */
} spim_event;

/* Limits; zero-initialised means the defaults above. */
typedef struct spim_event_options {
    size_t max_input_bytes;       /* whole payload */
    size_t max_records;           /* records after unwrapping every envelope */
    size_t max_key_bytes;         /* a longer decoded key is a per-record error */
} spim_event_options;

/* Parse `len` bytes of JSON (need not be NUL-terminated) into *out. A broken
   envelope fails as a whole; an SQS/SNS message whose body is not a usable
   S3 event, or a record whose key cannot be decoded, becomes a record with
   `status` set, so the rest of the batch still runs. opt may be NULL.
   cJSON allocates its temporary tree through its own hooks (cJSON_InitHooks),
   not SPIM_MALLOC; everything returned comes from SPIM_MALLOC. */
SPIMDEF spim_status spim_event_parse(const char *json, size_t len, const spim_event_options *opt,
                                     spim_event **out, spim_error *err);
/* Free everything spim_event_parse returned (NULL is fine). */
SPIMDEF void spim_event_free(spim_event *event);

/* Decode an S3 notification key (form encoding: '+' is a space, %XX a byte)
   into `out`, replacing its contents. Bad or truncated escapes and decoded
   NUL bytes are SPIM_ERR_INVALID. */
SPIMDEF spim_status spim_url_decode_key(const char *s, size_t len, spim_buf *out, spim_error *err);

/* Kind of an event name with or without "s3:"; *normalised (if not NULL)
   points into `name` past the prefix. */
SPIMDEF spim_event_kind spim_event_classify(const char *name, const char **normalised);
/* "other", "created", "removed", "test". */
SPIMDEF const char *spim_event_kind_str(spim_event_kind kind);
/* "direct", "sqs", "sns", "eventbridge". */
SPIMDEF const char *spim_event_source_str(spim_event_source source);
