/* config.h - the imager's configuration, from the SPARTA_* variables (README): the output
   prefix and bucket, the stamp and the stamp options. Included once, by main.c. */

typedef struct config {
    const char *prefix, *output_bucket;
    spim_stamp stamp;             /* SPARTA_STAMP's, or the embedded one from the first record */
    spim_stamp_options opt;
    spim_s3_client *s3;
} config;

/* Variable -> stamp option, with spim_stamp_option_set's rules. */
static const char *const OPTIONS[][2] = {
    {"SPARTA_STAMP_GRAVITY", "gravity"}, {"SPARTA_STAMP_MARGIN", "margin"},
    {"SPARTA_STAMP_SCALE", "scale"}, {"SPARTA_STAMP_OPACITY", "opacity"},
    {"SPARTA_JPEG_QUALITY", "quality"}, {"SPARTA_JPEG_MODE", "jpeg-mode"},
    {"SPARTA_MAX_PIXELS", "max-pixels"}};

/* The stamp SPARTA_STAMP names: a file or s3://bucket/key. */
static spim_status load_stamp(config *c, const char *where, spim_error *err)
{
    spim_s3_object obj = {0};
    char bucket[256];
    const char *key;
    spim_status st;
    if (strncmp(where, "s3://", 5) != 0)
        st = spim_read_file(where, 16u << 20, &obj.body, err);
    else if ((st = spim_s3_parse_uri(where, bucket, sizeof bucket, &key, err)) == SPIM_OK)
        st = spim_s3_get(c->s3, bucket, key, 16u << 20, &obj, err);
    if (st == SPIM_OK) st = spim_stamp_load(&c->stamp, obj.body.data, obj.body.len, err);
    spim_s3_object_free(&obj);
    return st;
}

static spim_status imager_init(void *user, spim_error *err)
{
    config *c = (config *)user;
    const char *v = getenv("SPARTA_OUTPUT_PREFIX"), *stamp = getenv("SPARTA_STAMP");
    spim_status st;
    size_t i;
    c->prefix = v ? v : "xformed_";
    v = getenv("SPARTA_OUTPUT_BUCKET");
    c->output_bucket = v && *v ? v : NULL;
    if (!*c->prefix)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_OUTPUT_PREFIX is empty: "
                              "the stamped copies would overwrite the originals");
    if (strlen(c->prefix) >= SPIM_S3_MAX_KEY)
        return spim_error_set(err, SPIM_ERR_CONFIG,
                              "SPARTA_OUTPUT_PREFIX is longer than an S3 key");
    c->opt.scale = 0.25;   /* the other defaults are the library's: se, margin 0, opaque, q90 */
    for (i = 0; i < sizeof OPTIONS / sizeof OPTIONS[0]; i++) {
        v = getenv(OPTIONS[i][0]);
        if (v && *v && spim_stamp_option_set(&c->opt, OPTIONS[i][1], v, err) != SPIM_OK)
            return spim_error_set(err, SPIM_ERR_CONFIG, "%s: %s", OPTIONS[i][0], err->message);
    }
    if (!c->opt.max_pixels) c->opt.max_pixels = spim_default_max_pixels();   /* and the GET limit */
    if ((st = spim_s3_client_create(NULL, &c->s3, err)) != SPIM_OK) return st;
    if (stamp && *stamp && load_stamp(c, stamp, err) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": %s", stamp,
                              err->message);
    spim_log_fields(SPIM_LOG_INFO, "imager ready", SPIM_LOG_STR("prefix", c->prefix),
                    SPIM_LOG_STR("output_bucket", c->output_bucket ? c->output_bucket : "(source)"),
                    SPIM_LOG_STR("stamp", stamp && *stamp ? stamp : "(embedded)"), SPIM_LOG_END);
    return SPIM_OK;
}

