/* config.h - the imager's configuration, from the SPARTA_* variables (README): the output
   prefix and bucket, the stamp, the stamp options and the rules per prefix (SPARTA_RULES), and
   each key's share of it (route). Included once, by main.c. */

typedef struct config {
    const char *prefix, *output_bucket;
    spim_stamp stamp;             /* SPARTA_STAMP's, or the embedded one from the first record */
    spim_stamp_options opt;
    spim_s3_client *s3;
    spim_rules *rules;            /* SPARTA_RULES, or NULL */
} config;

/* Variable -> stamp option, with spim_stamp_option_set's rules. */
static const char *const OPTIONS[][2] = {
    {"SPARTA_STAMP_GRAVITY", "gravity"}, {"SPARTA_STAMP_MARGIN", "margin"},
    {"SPARTA_STAMP_SCALE", "scale"}, {"SPARTA_STAMP_OPACITY", "opacity"},
    {"SPARTA_JPEG_QUALITY", "quality"}, {"SPARTA_JPEG_MODE", "jpeg-mode"},
    {"SPARTA_MAX_PIXELS", "max-pixels"}, {"SPARTA_METADATA", "metadata"}};

/* A file or s3://bucket/key (a stamp, the rules) into obj->body. */
static spim_status fetch(const config *c, const char *where, spim_s3_object *obj, spim_error *err)
{
    char bucket[256];
    const char *key;
    spim_status st;
    if (strncmp(where, "s3://", 5) != 0) return spim_read_file(where, 16u << 20, &obj->body, err);
    if ((st = spim_s3_parse_uri(where, bucket, sizeof bucket, &key, err)) == SPIM_OK)
        st = spim_s3_get(c->s3, bucket, key, 16u << 20, obj, err);
    return st;
}

static spim_status load_stamp(const config *c, const char *where, spim_stamp *stamp,
                              spim_error *err)
{
    spim_s3_object obj = {0};
    spim_status st = fetch(c, where, &obj, err);
    if (st == SPIM_OK) st = spim_stamp_load(stamp, obj.body.data, obj.body.len, err);
    spim_s3_object_free(&obj);
    return st;
}

/* One rule's stamp and font, loaded once, and its options checked together (spim_stamp_check). */
static spim_status load_rule(const config *c, spim_rule *r, spim_error *err)
{
    spim_s3_object obj = {0};
    spim_status st = SPIM_OK;
    if (r->stamp_source && (st = load_stamp(c, r->stamp_source, &r->stamp, err)) != SPIM_OK)
        return spim_error_set(err, st, "field \"stamp\": %.200s: %s", r->stamp_source,
                              err->message);
    if (r->font_source && (st = fetch(c, r->font_source, &obj, err)) != SPIM_OK) {
        spim_s3_object_free(&obj);
        return spim_error_set(err, st, "field \"font\": %.200s: %s", r->font_source,
                              err->message);
    }
    if (r->font_source) {   /* the rule owns the bytes; its options point at them */
        r->font = obj.body;
        memset(&obj.body, 0, sizeof obj.body);
        r->opt.font = r->font.data;
        r->opt.font_len = r->font.len;
    }
    spim_s3_object_free(&obj);
    return spim_stamp_check(&r->opt, err);
}

/* SPARTA_RULES over the defaults the variables set; each rule's stamp and font loaded once. */
static spim_status load_rules(config *c, const char *where, spim_error *err)
{
    spim_s3_object obj = {0};
    spim_status st = fetch(c, where, &obj, err);
    const char *json = (const char *)obj.body.data;
    size_t i;
    if (st == SPIM_OK) st = spim_rules_parse(json, obj.body.len, &c->opt, &c->rules, err);
    spim_s3_object_free(&obj);
    for (i = 0; st == SPIM_OK && i < c->rules->count; i++)
        if ((st = load_rule(c, &c->rules->rule[i], err)) != SPIM_OK)
            spim_error_set(err, st, "rules[%zu] (prefix \"%.100s\"): %s", i,
                           c->rules->rule[i].prefix, err->message);
    return st;
}

/* The configuration for one record: its rule's (output prefix and bucket, options, stamp) over
   the defaults. */
static const spim_rule *route(const config *c, const spim_s3_record *rec, config *out)
{
    const spim_rule *r = rec->status == SPIM_OK ? spim_rules_match(c->rules, rec->key) : NULL;
    *out = *c;
    if (!r) return NULL;
    if (r->output_prefix) out->prefix = r->output_prefix;
    if (r->output_bucket) out->output_bucket = r->output_bucket;
    if (r->stamp.rgba) out->stamp = r->stamp;
    out->opt = r->opt;
    return r;
}

/* Loop guard: a key under the default output prefix or any rule's is a copy. */
static const char *guarded(const config *c, const char *key)
{
    size_t i;
    if (strncmp(key, c->prefix, strlen(c->prefix)) == 0) return c->prefix;
    for (i = 0; c->rules && i < c->rules->count; i++) {
        const char *p = c->rules->rule[i].output_prefix;
        if (p && strncmp(key, p, strlen(p)) == 0) return p;
    }
    return NULL;
}

static spim_status imager_init(void *user, spim_error *err)
{
    config *c = (config *)user;
    const char *v = getenv("SPARTA_OUTPUT_PREFIX"), *stamp = getenv("SPARTA_STAMP");
    const char *rules = getenv("SPARTA_RULES");
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
    if (stamp && *stamp && load_stamp(c, stamp, &c->stamp, err) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": %s", stamp,
                              err->message);
    if (rules && *rules && load_rules(c, rules, err) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_RULES=\"%.200s\": %s", rules,
                              err->message);
    /* several workers (AWS_LAMBDA_MAX_CONCURRENCY) write nothing shared: decode the stamp now */
    if (!c->stamp.rgba && getenv("AWS_LAMBDA_MAX_CONCURRENCY") &&
        (st = spim_stamp_load(&c->stamp, spim_stamp_png, sizeof spim_stamp_png, err)) != SPIM_OK)
        return st;
    spim_log_fields(SPIM_LOG_INFO, "imager ready", SPIM_LOG_STR("prefix", c->prefix),
                    SPIM_LOG_STR("output_bucket", c->output_bucket ? c->output_bucket : "(source)"),
                    SPIM_LOG_STR("stamp", stamp && *stamp ? stamp : "(embedded)"),
                    SPIM_LOG_INT("rules", c->rules ? (int64_t)c->rules->count : 0), SPIM_LOG_END);
    return SPIM_OK;
}

