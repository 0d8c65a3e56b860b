/* config.h - the imager's configuration, from the SPARTA_* variables (README): the output
   prefix and bucket, the stamp, the stamp options and the rules per prefix (SPARTA_RULES), and
   each key's share of it (route). Included once, by main.c. */

#include "build/assets/font_ttf.h"

typedef struct config {
    const char *prefix, *output_bucket;
    spim_stamp stamp;             /* SPARTA_STAMP's, or the embedded one from the first record */
    spim_stamp_options opt;
    spim_s3_client *s3;
    spim_rules *rules;            /* SPARTA_RULES, or NULL */
    spim_buf font;                /* SPARTA_STAMP_FONT's (else the embedded DejaVu Sans) */
    int text_only;                /* SPARTA_STAMP=none: the text alone */
    const spim_stamp *draw;       /* per record: the stamp, or NULL for the text alone */
    spim_text_vars vars;          /* per record: the text's placeholders */
} config;

/* Variable -> stamp option, with spim_stamp_option_set's rules. */
static const char *const OPTIONS[][2] = {
    {"SPARTA_STAMP_GRAVITY", "gravity"}, {"SPARTA_STAMP_MARGIN", "margin"},
    {"SPARTA_STAMP_SCALE", "scale"}, {"SPARTA_STAMP_OPACITY", "opacity"},
    {"SPARTA_JPEG_QUALITY", "quality"}, {"SPARTA_JPEG_MODE", "jpeg-mode"},
    {"SPARTA_MAX_PIXELS", "max-pixels"}, {"SPARTA_METADATA", "metadata"},
    {"SPARTA_WEBP_QUALITY", "webp-quality"},
    {"SPARTA_STAMP_TILE", "tile"}, {"SPARTA_STAMP_TEXT", "text"},
    {"SPARTA_STAMP_TEXT_GRAVITY", "text-gravity"}, {"SPARTA_STAMP_TEXT_SIZE", "text-size"},
    {"SPARTA_STAMP_TEXT_COLOR", "text-color"}, {"SPARTA_STAMP_TEXT_EFFECT", "text-effect"},
    {"SPARTA_STAMP_FONT", "font"}};

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

/* The text's font (SPARTA_STAMP_FONT, else the embedded one) and every option checked together;
   an error names the variable of the option it is about ("text: ..." -> SPARTA_STAMP_TEXT). */
static spim_status check_options(config *c, spim_error *err)
{
    const char *font = getenv("SPARTA_STAMP_FONT");
    spim_s3_object obj = {0};
    size_t i, n;
    c->opt.font = spim_font_ttf;
    c->opt.font_len = sizeof spim_font_ttf;
    if (font && *font) {
        if (fetch(c, font, &obj, err) != SPIM_OK) {
            spim_s3_object_free(&obj);
            return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP_FONT=\"%.200s\": %s", font,
                                  err->message);
        }
        c->font = obj.body;
        obj.body = (spim_buf)SPIM_BUF_INIT;
        spim_s3_object_free(&obj);
        c->opt.font = c->font.data;
        c->opt.font_len = c->font.len;
    }
    if (spim_stamp_check(&c->opt, err) == SPIM_OK) return SPIM_OK;
    for (i = 0; i < sizeof OPTIONS / sizeof OPTIONS[0]; i++) {
        n = strlen(OPTIONS[i][1]);
        if (strncmp(err->message, OPTIONS[i][1], n) == 0 && err->message[n] == ':')
            return spim_error_set(err, SPIM_ERR_CONFIG, "%s%s", OPTIONS[i][0], err->message + n);
    }
    return SPIM_ERR_CONFIG;
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
    out->vars.key = rec->key;
    out->vars.bucket = rec->bucket;
    out->vars.time = rec->event_time;
    if (r) {
        if (r->output_prefix) out->prefix = r->output_prefix;
        if (r->output_bucket) out->output_bucket = r->output_bucket;
        if (r->stamp.rgba) out->stamp = r->stamp;
        out->opt = r->opt;
    }
    out->opt.vars = &out->vars;   /* out is the record's own copy: the pointer stays valid */
    out->draw = c->text_only && !(r && r->stamp.rgba) ? NULL : &out->stamp;
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
    for (i = 0; i + 1 < sizeof OPTIONS / sizeof OPTIONS[0]; i++) {   /* the last (font): a file */
        v = getenv(OPTIONS[i][0]);
        if (v && *v && spim_stamp_option_set(&c->opt, OPTIONS[i][1], v, err) != SPIM_OK)
            return spim_error_set(err, SPIM_ERR_CONFIG, "%s: %s", OPTIONS[i][0], err->message);
    }
    if (!c->opt.max_pixels) c->opt.max_pixels = spim_default_max_pixels();   /* and the GET limit */
    if ((st = spim_s3_client_create(NULL, &c->s3, err)) != SPIM_OK) return st;
    c->text_only = stamp && strcmp(stamp, "none") == 0;
    if (stamp && *stamp && !c->text_only && load_stamp(c, stamp, &c->stamp, err) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": %s", stamp,
                              err->message);
    if ((st = check_options(c, err)) != SPIM_OK) return st;   /* before the rules inherit them */
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

static void config_free(config *c)
{
    spim_stamp_free(&c->stamp);
    spim_buf_free(&c->font);
    spim_rules_free(c->rules);
    spim_s3_client_free(c->s3);
}
