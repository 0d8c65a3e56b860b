/* s3: credentials, addressing, error documents and retry rules without a
   server; then round trips, errors and injected faults against the real
   radosgw started by tests/it/servers.sh (SPIM_TEST_* variables). */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static spim_status parse_creds(const char *text, const char *profile, spim_credentials *c, spim_error *e)
{
    spim__error_clear(e);
    return spim__s3_parse_credentials(text, strlen(text), profile, c, e);
}

static void clear_aws_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL
    };
    int i;
    for (i = 0; vars[i]; i++) unsetenv(vars[i]);
}

/* A client from explicit options, credentials given inline. */
static spim_s3_client *make_client(const char *endpoint, const char *region, int path_style)
{
    spim_s3_options o;
    spim_credentials cr;
    spim_s3_client *c = NULL;
    spim_error e;
    memset(&o, 0, sizeof o);
    memset(&cr, 0, sizeof cr);
    strcpy(cr.access_key_id, "AKIDEXAMPLE");
    strcpy(cr.secret_access_key, "secret");
    o.credentials = &cr;
    o.endpoint = endpoint;
    o.region = region;
    o.force_path_style = path_style;
    spim__error_clear(&e);
    if (spim_s3_client_create(&o, &c, &e) != SPIM_OK) printf("    client: %s\n", e.message);
    return c;
}

static char url_got[2048];
static const char *url_of(spim_s3_client *c, const char *bucket, const char *key)
{
    spim_buf u = SPIM_BUF_INIT;
    url_got[0] = 0;
    if (spim__s3_object_url(c, bucket, key, &u, NULL) == SPIM_OK)
        snprintf(url_got, sizeof url_got, "%s", (const char *)u.data);
    spim_buf_free(&u);
    return url_got;
}

/* ---- credentials ----------------------------------------------------------- */

TEST(credentials_file_profiles_comments_whitespace)
{
    spim_credentials c;
    spim_error e;
    const char *text =
        "# a comment\r\n"
        "; another\n"
        "[default]\n"
        "aws_access_key_id=AKIADEFAULT\n"
        "aws_secret_access_key = default/Secret+Key\n"
        "\n"
        "  [ work ]  \r\n"
        "\tAWS_ACCESS_KEY_ID  =   AKIAWORK   # inline comment\r\n"
        "aws_secret_access_key:workSecret;notacomment\r\n"
        "aws_session_token = TOKEN/with+slash==\r\n"
        "region = eu-west-1\r\n"
        "[other]\n"
        "aws_access_key_id = AKIAOTHER";
    REQUIRE(parse_creds(text, NULL, &c, &e) == SPIM_OK);
    CHECK_STR("AKIADEFAULT", c.access_key_id);
    CHECK_STR("default/Secret+Key", c.secret_access_key);
    CHECK_STR("", c.session_token);
    REQUIRE(parse_creds(text, "work", &c, &e) == SPIM_OK);
    CHECK_STR("AKIAWORK", c.access_key_id);
    CHECK_STR("workSecret;notacomment", c.secret_access_key);
    CHECK_STR("TOKEN/with+slash==", c.session_token);
    CHECK_INT(SPIM_ERR_CONFIG, parse_creds(text, "other", &c, &e));
    CHECK_STR("credentials: profile [other] has no aws_secret_access_key", e.message);
    CHECK_STR("", c.access_key_id);
}

TEST(credentials_file_reports_bad_input)
{
    spim_credentials c;
    spim_error e;
    char *big;
    CHECK_INT(SPIM_ERR_NOT_FOUND, parse_creds("[default]\naws_access_key_id=A\n", "prod", &c, &e));
    CHECK_STR("credentials: no profile [prod]", e.message);
    CHECK_INT(SPIM_ERR_NOT_FOUND, parse_creds("", NULL, &c, &e));
    CHECK_INT(SPIM_ERR_CONFIG, parse_creds("[default]\naws_access_key_id = two words\naws_secret_access_key=x\n",
                                           NULL, &c, &e));
    CHECK(strstr(e.message, "line 2") != NULL);
    CHECK_INT(SPIM_ERR_CONFIG, parse_creds("[default]\naws_access_key_id =\naws_secret_access_key=x\n", NULL, &c, &e));
    CHECK(strstr(e.message, "empty") != NULL);
    /* a header without its ']' matches no profile */
    CHECK_INT(SPIM_ERR_NOT_FOUND, parse_creds("[default\naws_access_key_id=A\naws_secret_access_key=B\n",
                                              NULL, &c, &e));
    /* bytes after a NUL are still parsed by length, and the NUL is refused in a value */
    CHECK_INT(SPIM_ERR_CONFIG, spim__s3_parse_credentials("[default]\naws_access_key_id=A\0B\naws_secret_access_key=C\n",
                                                         51, NULL, &c, &e));
    big = (char *)calloc(SPIM_S3_CREDENTIALS_FILE_MAX + 1, 1);
    REQUIRE(big != NULL);
    memset(big, '#', SPIM_S3_CREDENTIALS_FILE_MAX + 1);
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim__s3_parse_credentials(big, SPIM_S3_CREDENTIALS_FILE_MAX + 1, NULL, &c, &e));
    memset(big, 'x', 300);
    memcpy(big, "[default]\naws_access_key_id=", 28);
    CHECK_INT(SPIM_ERR_CONFIG, spim__s3_parse_credentials(big, 300, NULL, &c, &e));
    CHECK(strstr(e.message, "too long") != NULL);
    free(big);
}

TEST(credentials_from_environment_then_file)
{
    spim_credentials c;
    spim_error e;
    const char *path = "build/test/s3_credentials.tmp";
    FILE *f;
    clear_aws_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envSecret", 1);
    setenv("AWS_SESSION_TOKEN", "envToken", 1);
    spim__error_clear(&e);
    REQUIRE(spim__s3_credentials_from_env(&c, &e) == SPIM_OK);
    CHECK_STR("AKIAENV", c.access_key_id);
    CHECK_STR("envToken", c.session_token);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    CHECK_INT(SPIM_ERR_AUTH, spim__s3_credentials_from_env(&c, &e));
    CHECK_STR("credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", e.message);
    clear_aws_env();
    f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fputs("[default]\naws_access_key_id=AKIAFILE\naws_secret_access_key=fileSecret\n"
          "[ci]\naws_access_key_id=AKIACI\naws_secret_access_key=ciSecret\n", f);
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    REQUIRE(spim__s3_credentials_from_env(&c, &e) == SPIM_OK);
    CHECK_STR("AKIAFILE", c.access_key_id);
    setenv("AWS_PROFILE", "ci", 1);
    REQUIRE(spim__s3_credentials_from_env(&c, &e) == SPIM_OK);
    CHECK_STR("ciSecret", c.secret_access_key);
    setenv("AWS_PROFILE", "nope", 1);
    CHECK_INT(SPIM_ERR_AUTH, spim__s3_credentials_from_env(&c, &e));
    CHECK(strstr(e.message, "AWS_ACCESS_KEY_ID") && strstr(e.message, path) && strstr(e.message, "[nope]"));
    setenv("AWS_SHARED_CREDENTIALS_FILE", "build/test/no-such-credentials", 1);
    CHECK_INT(SPIM_ERR_AUTH, spim__s3_credentials_from_env(&c, &e));
    CHECKF(strstr(e.message, "no AWS credentials") && strstr(e.message, "build/test/no-such-credentials"),
           "message: %s", e.message);
    remove(path);
    clear_aws_env();
}

TEST(client_without_credentials_fails_clearly)
{
    spim_s3_client *c = (spim_s3_client *)&c;
    spim_error e;
    clear_aws_env();
    setenv("AWS_SHARED_CREDENTIALS_FILE", "build/test/no-such-credentials", 1);
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_AUTH, spim_s3_client_create(NULL, &c, &e));
    CHECK(c == NULL);
    CHECK(strstr(e.message, "no AWS credentials") != NULL);
    clear_aws_env();
}

/* ---- region, endpoint, addressing -------------------------------------------- */

TEST(s3_uris_are_split)
{
    char bucket[8];
    const char *key = NULL;
    spim_error err;
    CHECK_INT(SPIM_OK, spim_s3_parse_uri("s3://b-1/dir/stamp.png", bucket, sizeof bucket, &key, &err));
    CHECK_STR("b-1", bucket);
    CHECK_STR("dir/stamp.png", key);
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_parse_uri("s3://b-1/", bucket, sizeof bucket, &key, &err));
    CHECKF(strstr(err.message, "expected s3://BUCKET/KEY") != NULL, "message %s", err.message);
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_parse_uri("s3:///key", bucket, sizeof bucket, &key, &err));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_parse_uri("s3://bucket", bucket, sizeof bucket, &key, &err));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_parse_uri("http://b/k", bucket, sizeof bucket, &key, &err));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_parse_uri("s3://toolongname/k", bucket, sizeof bucket, &key, &err));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_parse_uri(NULL, bucket, sizeof bucket, &key, &err));
}

TEST(bucket_names_for_virtual_hosting)
{
    CHECK_INT(1, spim__s3_bucket_is_virtual_host_ok("my-bucket-1"));
    CHECK_INT(1, spim__s3_bucket_is_virtual_host_ok("abc"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("ab"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("my.bucket"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("My-Bucket"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("my_bucket"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("-bucket"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("bucket-"));
    CHECK_INT(1, spim__s3_bucket_is_virtual_host_ok("a123456789012345678901234567890123456789012345678901234567890bc"));
    CHECK_INT(0, spim__s3_bucket_is_virtual_host_ok("a123456789012345678901234567890123456789012345678901234567890bcd"));
}

TEST(aws_endpoint_addressing)
{
    spim_s3_client *c;
    clear_aws_env();
    c = make_client(NULL, "eu-west-3", 0);
    REQUIRE(c != NULL);
    CHECK_STR("https://photos.s3.eu-west-3.amazonaws.com/a%20b/c%2Bd.jpg", url_of(c, "photos", "a b/c+d.jpg"));
    CHECK_STR("https://s3.eu-west-3.amazonaws.com/my.photos/k", url_of(c, "my.photos", "k"));
    CHECK_STR("https://photos.s3.eu-west-3.amazonaws.com/", url_of(c, "photos", NULL));
    CHECK_STR("https://s3.eu-west-3.amazonaws.com/my.photos", url_of(c, "my.photos", ""));
    CHECK_STR("", url_of(c, "", "k"));
    spim_s3_client_free(c);
    c = make_client(NULL, "us-east-1", 1);
    REQUIRE(c != NULL);
    CHECK_STR("https://s3.us-east-1.amazonaws.com/photos/k", url_of(c, "photos", "k"));
    spim_s3_client_free(c);
}

TEST(region_and_endpoint_from_environment)
{
    spim_s3_client *c;
    spim_s3_options o;
    spim_error e;
    clear_aws_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envSecret", 1);
    REQUIRE(spim_s3_client_create(NULL, &c, NULL) == SPIM_OK);
    CHECK_STR("us-east-1", c->region);
    spim_s3_client_free(c);
    setenv("AWS_DEFAULT_REGION", "eu-north-1", 1);
    REQUIRE(spim_s3_client_create(NULL, &c, NULL) == SPIM_OK);
    CHECK_STR("eu-north-1", c->region);
    spim_s3_client_free(c);
    setenv("AWS_REGION", "ap-south-2", 1);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7480//", 1);
    REQUIRE(spim_s3_client_create(NULL, &c, NULL) == SPIM_OK);
    CHECK_STR("ap-south-2", c->region);
    /* a custom endpoint is path-style, and keys keep ./, ../ and // */
    CHECK_STR("http://127.0.0.1:7480/photos/a//b/../c/./%C3%A9%20%2B", url_of(c, "photos", "a//b/../c/./\xc3\xa9 +"));
    spim_s3_client_free(c);
    unsetenv("AWS_ENDPOINT_URL_S3");
    REQUIRE(spim_s3_client_create(NULL, &c, NULL) == SPIM_OK);
    CHECK_STR("http://127.0.0.1:1/photos/k", url_of(c, "photos", "k"));
    spim_s3_client_free(c);
    memset(&o, 0, sizeof o);
    o.endpoint = "ftp://example";
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_CONFIG, spim_s3_client_create(&o, &c, &e));
    CHECK(strstr(e.message, "http://") != NULL);
    o.endpoint = "http://127.0.0.1:7480/prefix";
    CHECK_INT(SPIM_ERR_CONFIG, spim_s3_client_create(&o, &c, &e));
    o.endpoint = NULL;
    o.region = "us-east-1.evil.com/";
    CHECK_INT(SPIM_ERR_CONFIG, spim_s3_client_create(&o, &c, &e));
    CHECK(c == NULL);
    clear_aws_env();
}

/* Debian's libcurl looks for Debian's CA bundle; on AL2023 (Lambda) the
   client must find Amazon Linux's instead, and honour SSL_CERT_FILE. */
TEST(ca_bundle_is_found_or_given)
{
    spim_s3_client *c;
    spim_s3_options o;
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    clear_aws_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envSecret", 1);
    setenv("SSL_CERT_FILE", "/opt/certs/bundle.pem", 1);
    REQUIRE(spim_s3_client_create(NULL, &c, NULL) == SPIM_OK);
    CHECK_STR("/opt/certs/bundle.pem", c->ca_file);
    spim_s3_client_free(c);
    memset(&o, 0, sizeof o);
    o.ca_file = "/given/ca.pem";
    REQUIRE(spim_s3_client_create(&o, &c, NULL) == SPIM_OK);
    CHECK_STR("/given/ca.pem", c->ca_file);
    spim_s3_client_free(c);
    unsetenv("SSL_CERT_FILE");
    REQUIRE(spim_s3_client_create(NULL, &c, NULL) == SPIM_OK);
    if (info->cainfo && access(info->cainfo, R_OK) == 0)
        CHECK_STR("", c->ca_file); /* libcurl's own bundle exists: keep it */
    else
        CHECKF(access(c->ca_file, R_OK) == 0, "probed \"%s\"", c->ca_file);
    spim_s3_client_free(c);
    clear_aws_env();
}

/* ---- error documents and classification ------------------------------------- */

TEST(error_xml_parsing)
{
    spim__s3_error_info i;
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                      "<Message>The resource &lt;you&gt; &amp; &quot;I&quot;\nwant</Message>"
                      "<Key>a</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    CHECK_INT(1, spim__s3_parse_error(doc, strlen(doc), &i));
    CHECK_STR("NoSuchKey", i.code);
    CHECK_STR("The resource <you> & \"I\" want", i.message);
    CHECK_STR("4442587FB7D0A2F9", i.request_id);
    CHECK_INT(0, spim__s3_parse_error(doc, 60, &i)); /* cut before </Code> */
    CHECK_STR("", i.code);
    CHECK_INT(0, spim__s3_parse_error("<html>502 Bad Gateway</html>", 28, &i));
    CHECK_INT(0, spim__s3_parse_error("<Error><Code></Code></Error>", 28, &i));
    CHECK_INT(0, spim__s3_parse_error(NULL, 0, &i));
    doc = "<Code>SlowDown</Code><Message>a &amp b &# &amp;amp;</Message>";
    CHECK_INT(1, spim__s3_parse_error(doc, strlen(doc), &i));
    CHECK_STR("a &amp b &# &amp;", i.message);
}

TEST(status_and_retry_classification)
{
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim__s3_status_for(404, "NoSuchKey"));
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim__s3_status_for(404, "NoSuchBucket"));
    CHECK_INT(SPIM_ERR_AUTH, spim__s3_status_for(403, "SignatureDoesNotMatch"));
    CHECK_INT(SPIM_ERR_AUTH, spim__s3_status_for(403, "InvalidAccessKeyId"));
    CHECK_INT(SPIM_ERR_AUTH, spim__s3_status_for(403, "AccessDenied"));
    CHECK_INT(SPIM_ERR_HTTP, spim__s3_status_for(503, "SlowDown"));
    CHECK_INT(SPIM_ERR_HTTP, spim__s3_status_for(400, "InvalidArgument"));
    CHECK_INT(SPIM_ERR_NETWORK, spim__s3_status_for(0, ""));
    CHECK_INT(1, spim__s3_is_retryable(0, NULL));
    CHECK_INT(1, spim__s3_is_retryable(500, "InternalError"));
    CHECK_INT(1, spim__s3_is_retryable(502, ""));
    CHECK_INT(1, spim__s3_is_retryable(503, "SlowDown"));
    CHECK_INT(1, spim__s3_is_retryable(504, ""));
    CHECK_INT(1, spim__s3_is_retryable(400, "RequestTimeout"));
    CHECK_INT(0, spim__s3_is_retryable(501, "NotImplemented"));
    CHECK_INT(0, spim__s3_is_retryable(404, "NoSuchKey"));
    CHECK_INT(0, spim__s3_is_retryable(403, "SignatureDoesNotMatch"));
    CHECK_INT(1, spim__s3_is_clock_skew("RequestTimeTooSkewed", 0, 1000));
    CHECK_INT(1, spim__s3_is_clock_skew("RequestExpired", 0, 1000));
    CHECK_INT(1, spim__s3_is_clock_skew("SignatureDoesNotMatch", 1000 + 241, 1000));
    CHECK_INT(1, spim__s3_is_clock_skew("SignatureDoesNotMatch", 1000 - 241, 1000));
    CHECK_INT(0, spim__s3_is_clock_skew("SignatureDoesNotMatch", 1000 + 240, 1000));
    CHECK_INT(0, spim__s3_is_clock_skew("SignatureDoesNotMatch", 0, 1000));
    CHECK_INT(0, spim__s3_is_clock_skew("AccessDenied", 99999, 1000));
}

TEST(http_dates)
{
    CHECK_INT(784111777, spim__s3_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"));
    CHECK_INT(1795707672, spim__s3_parse_http_date("Thu, 26 Nov 2026 15:41:12 GMT"));
    CHECK_INT(951782400, spim__s3_parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"));
    CHECK_INT(0, spim__s3_parse_http_date("Sun, 06 Nvo 1994 08:49:37 GMT"));
    CHECK_INT(0, spim__s3_parse_http_date("06 Nov 1994 08:49:37 GMT"));
    CHECK_INT(0, spim__s3_parse_http_date("Sun, 06 Nov 1994 08:49:37"));
    CHECK_INT(0, spim__s3_parse_http_date(""));
}

/* ---- ListObjectsV2 documents, without a server ------------------------------ */

static spim_status list_xml(const char *xml, spim_s3_list **l, spim_error *e)
{
    size_t n = strlen(xml);
    char *copy = (char *)malloc(n ? n : 1); /* exact size: the sanitizer sees any overread */
    spim_status st;
    if (!copy) return SPIM_ERR_NOMEM;
    memcpy(copy, xml, n);
    spim__error_clear(e);
    st = spim__s3_list_from_xml(copy, n, l, e);
    free(copy);
    return st;
}

#define LIST_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
#define ENTRY(key, size) "<Contents><Key>" key "</Key><LastModified>2026-03-14T09:26:53.000Z</LastModified>" \
    "<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>" size "</Size><StorageClass>STANDARD</StorageClass></Contents>"

TEST(list_document_is_decoded)
{
    spim_s3_list *l;
    spim_error e;
    const char *xml = LIST_HEAD "<EncodingType>url</EncodingType><Name>b</Name><Prefix>p%2F</Prefix>"
                      "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
                      ENTRY("p%2Fsummer+2024%2Fcaf%C3%A9%20%2B%20friends%E2%9C%93+100%25.jpg", "48213")
                      ENTRY("p%2Fx%26y%3Cz%3E", "0") "<KeyCount>2</KeyCount></ListBucketResult>";
    REQUIRE(list_xml(xml, &l, &e) == SPIM_OK);
    CHECK_INT(2, l->count);
    CHECK_INT(1, l->is_truncated);
    CHECK_STR("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", l->next_token);
    if (l->count == 2) {
        CHECK_STR("p/summer 2024/caf\xc3\xa9 + friends\xe2\x9c\x93 100%.jpg", l->entries[0].key);
        CHECK_INT(strlen(l->entries[0].key), l->entries[0].key_len);
        CHECK_INT(48213, l->entries[0].size);
        CHECK_STR("\"9dd4e461268c8034f5c8564e155c67a6\"", l->entries[0].etag);
        CHECK_STR("2026-03-14T09:26:53.000Z", l->entries[0].last_modified);
        CHECK_STR("STANDARD", l->entries[0].storage_class);
        CHECK_STR("p/x&y<z>", l->entries[1].key);
        CHECK_INT(0, l->entries[1].size);
    }
    spim_s3_list_free(l);
}

TEST(list_without_encoding_type_keeps_keys_verbatim)
{
    spim_s3_list *l;
    spim_error e;
    /* a server that ignored encoding-type=url: '+' and '%' are the key's own */
    const char *xml = LIST_HEAD "<IsTruncated>false</IsTruncated>"
                      "<Contents><Key>a+b%20c &amp; &#233;&#x1F600;&lt;</Key><Size>7</Size></Contents></ListBucketResult>";
    REQUIRE(list_xml(xml, &l, &e) == SPIM_OK);
    REQUIRE(l->count == 1);
    CHECK_STR("a+b%20c & \xc3\xa9\xf0\x9f\x98\x80<", l->entries[0].key);
    CHECK_STR("", l->entries[0].etag);
    CHECK_STR("", l->entries[0].last_modified);
    CHECK_STR("", l->entries[0].storage_class);
    CHECK_INT(0, l->is_truncated);
    CHECK_STR("", l->next_token);
    spim_s3_list_free(l);
    REQUIRE(list_xml(LIST_HEAD "</ListBucketResult>", &l, &e) == SPIM_OK);
    CHECK_INT(0, l->count);
    CHECK_INT(0, l->is_truncated);
    spim_s3_list_free(l);
}

static void expect_list_error(const char *xml, const char *message, int line)
{
    spim_s3_list *l = (spim_s3_list *)&l; /* must be reset to NULL */
    spim_error e;
    spim_status st = list_xml(xml, &l, &e);
    if (st != SPIM_ERR_INVALID || strcmp(e.message, message) != 0 || l != NULL) {
        spim_t_fail_at(__FILE__, line);
        printf("    expected: %d \"%s\"\n    got:      %d \"%s\"%s\n", SPIM_ERR_INVALID, message, st, e.message,
               l ? " (and a list)" : "");
        if (st == SPIM_OK) spim_s3_list_free(l);
    }
}
#define EXPECT_LIST_ERROR(xml, message) expect_list_error(xml, message, __LINE__)

TEST(hostile_list_documents_are_refused_precisely)
{
    EXPECT_LIST_ERROR("", "the answer is not a ListBucketResult");
    EXPECT_LIST_ERROR("<Error><Code>x</Code></Error>", "the answer is not a ListBucketResult");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Size>1</Size></Contents>", "Contents[0].Key: missing");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>k</Key></Contents>", "Contents[0].Size: missing");
    EXPECT_LIST_ERROR(LIST_HEAD ENTRY("a", "1") "<Contents><Key>k</Key><Size>-1</Size></Contents>",
                      "Contents[1].Size: expected a whole number of bytes, got \"-1\"");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>k</Key><Size>99999999999999999999</Size></Contents>",
                      "Contents[0].Size: expected a whole number of bytes, got \"99999999999999999999\"");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>k</Key><Size>1\n2</Size></Contents>",
                      "Contents[0].Size: expected a whole number of bytes, got \"1?2\"");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>a&nbsp;b</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: unknown or malformed entity at byte 1");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>a&#0;b</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: unknown or malformed entity at byte 1");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>&#xD800;</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: unknown or malformed entity at byte 0");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>&#x110000;</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: unknown or malformed entity at byte 0");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>&#12345678901;</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: unknown or malformed entity at byte 0");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key>a&amp</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: unknown or malformed entity at byte 1");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key><![CDATA[k]]></Key><Size>1</Size></Contents>",
                      "Contents[0].Key: markup inside the text at byte 0");
    EXPECT_LIST_ERROR(LIST_HEAD "<EncodingType>url</EncodingType><Contents><Key>bad%zz</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: invalid escape \"%zz\" at byte 3");
    EXPECT_LIST_ERROR(LIST_HEAD "<EncodingType>url</EncodingType><Contents><Key>nul%00</Key><Size>1</Size></Contents>",
                      "Contents[0].Key: escape %00 at byte 3 decodes to a NUL byte");
    EXPECT_LIST_ERROR(LIST_HEAD "<Contents><Key></Key><Size>1</Size></Contents>", "Contents[0].Key: empty");
    EXPECT_LIST_ERROR(LIST_HEAD ENTRY("a", "1") "<Contents><Key>b</Key><Size>1</Size>",
                      "Contents[1]: no </Contents>");
    EXPECT_LIST_ERROR(LIST_HEAD "<IsTruncated>true</IsTruncated></ListBucketResult>",
                      "IsTruncated is true but there is no NextContinuationToken");
    EXPECT_LIST_ERROR(LIST_HEAD "<IsTruncated>yes\x01</IsTruncated></ListBucketResult>",
                      "IsTruncated: expected true or false, got \"yes?\"");
}

/* Every prefix of a listing parses or fails with a message; the sanitizer
   build checks that nothing reads past the prefix and nothing leaks. */
TEST(every_prefix_of_a_list_document_is_handled)
{
    const char *xml = LIST_HEAD "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                      "<NextContinuationToken>tok&amp;en</NextContinuationToken>"
                      ENTRY("a%20b%2Bc", "12") ENTRY("caf%C3%A9&#x2F;&lt;", "0") "</ListBucketResult>";
    size_t n, len = strlen(xml), ok = 0;
    for (n = 0; n <= len; n++) {
        char *copy = (char *)malloc(n ? n : 1);
        spim_s3_list *l = NULL;
        spim_error e;
        spim_status st;
        REQUIRE(copy != NULL);
        memcpy(copy, xml, n);
        spim__error_clear(&e);
        st = spim__s3_list_from_xml(copy, n, &l, &e);
        free(copy);
        if (st == SPIM_OK) {
            ok++;
            CHECKF(l != NULL && l->count <= 2, "prefix %zu", n);
            spim_s3_list_free(l);
        } else {
            CHECKF(e.message[0] && l == NULL, "prefix %zu: status %d, message \"%s\"", n, st, e.message);
        }
    }
    CHECK(ok >= 1);
}

/* ---- against radosgw ------------------------------------------------------------ */

static char bucket[64], prefix[64];

/* SKIP (or fail with SPIM_REQUIRE_SERVERS=1) when no server was started. */
#define NEED_SERVER() do { \
        if (!getenv("SPIM_TEST_S3_ENDPOINT")) { \
            const char *req = getenv("SPIM_REQUIRE_SERVERS"); \
            REQUIRE(!(req && strcmp(req, "1") == 0) && "SPIM_TEST_S3_ENDPOINT is set"); \
            SKIP("no radosgw: SPIM_TEST_S3_ENDPOINT is not set (run through tests/run.sh)"); \
        } } while (0)

static spim_s3_client *server_client_at(const char *endpoint, const char *access, const char *secret,
                                        const spim_s3_options *extra)
{
    spim_s3_options o;
    spim_credentials cr;
    spim_s3_client *c = NULL;
    spim_error e;
    if (extra) o = *extra;
    else memset(&o, 0, sizeof o);
    memset(&cr, 0, sizeof cr);
    snprintf(cr.access_key_id, sizeof cr.access_key_id, "%s", access);
    snprintf(cr.secret_access_key, sizeof cr.secret_access_key, "%s", secret);
    o.credentials = &cr;
    o.endpoint = endpoint;
    o.region = getenv("SPIM_TEST_REGION");
    spim__no_sleep = o.backoff_base_ms == 0;
    spim__error_clear(&e);
    if (spim_s3_client_create(&o, &c, &e) != SPIM_OK) printf("    client: %s\n", e.message);
    return c;
}

static spim_s3_client *server_client(void)
{
    return server_client_at(getenv("SPIM_TEST_S3_ENDPOINT"), getenv("SPIM_TEST_ACCESS_KEY"),
                            getenv("SPIM_TEST_SECRET_KEY"), NULL);
}

static void make_key(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s%s", prefix, name);
}

TEST(create_bucket_is_idempotent)
{
    spim_s3_client *c;
    spim_error e;
    NEED_SERVER();
    c = server_client();
    REQUIRE(c != NULL);
    spim__error_clear(&e);
    CHECKF(spim_s3_create_bucket(c, bucket, &e) == SPIM_OK, "%s", e.message);
    CHECKF(spim_s3_create_bucket(c, bucket, &e) == SPIM_OK, "%s", e.message);
    spim_s3_client_free(c);
}

/* put -> head -> get -> delete -> head(404), checking every field. */
static void round_trip(spim_s3_client *c, const char *key, const unsigned char *data, size_t len)
{
    spim_s3_object put, head, get;
    spim_s3_put_options po;
    spim_header meta[2];
    spim_error e;
    memset(&put, 0, sizeof put);
    memset(&head, 0, sizeof head);
    memset(&get, 0, sizeof get);
    memset(&po, 0, sizeof po);
    meta[0].name = "Stamped-By";
    meta[0].value = "sparta imager";
    meta[1].name = "Source-Key"; /* radosgw turns '_' into '-' in names; AWS keeps it */
    meta[1].value = "a+b=c&d%e";
    po.content_type = "image/x-test";
    po.metadata = meta;
    po.metadata_count = 2;
    spim__error_clear(&e);
    CHECKF(spim_s3_put(c, bucket, key, data, len, &po, &put, &e) == SPIM_OK, "key %s: %s", key, e.message);
    CHECK_INT(200, put.http_status);
    CHECK(put.etag[0] == '"');
    CHECKF(spim_s3_head(c, bucket, key, &head, &e) == SPIM_OK, "key %s: %s", key, e.message);
    CHECK_STR("image/x-test", head.content_type);
    CHECK_INT(len, head.content_length);
    CHECK_STR(put.etag, head.etag);
    CHECK_STR("sparta imager", spim_s3_object_meta(&head, "stamped-by"));
    CHECK_STR("a+b=c&d%e", spim_s3_object_meta(&head, "source-key"));
    CHECK(spim_s3_object_meta(&head, "missing") == NULL);
    CHECKF(spim_s3_get(c, bucket, key, 0, &get, &e) == SPIM_OK, "key %s: %s", key, e.message);
    CHECK_MEM(data, len, get.body.data, get.body.len);
    CHECK_STR("sparta imager", spim_s3_object_meta(&get, "stamped-by"));
    CHECK_STR(put.etag, get.etag);
    CHECKF(spim_s3_delete(c, bucket, key, &e) == SPIM_OK, "key %s: %s", key, e.message);
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_head(c, bucket, key, &head, &e));
    CHECK_INT(404, head.http_status);
    CHECK_INT(404, e.http_status);
    spim_s3_object_free(&put);
    spim_s3_object_free(&head);
    spim_s3_object_free(&get);
}

TEST(round_trip_hostile_keys)
{
    static const char *const names[] = {
        "plain.txt", "with space.jpg", "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80.png",
        "+ = & % ~ * ' ( ) ! $ , ; : @ [ ] # ?", "a//double//slash", "dir/./dot", "dir/../dotdot",
        "trailing/", "%2F%20already-encoded%", NULL
    };
    char key[1100];
    spim_s3_client *c;
    int i;
    NEED_SERVER();
    c = server_client();
    REQUIRE(c != NULL);
    for (i = 0; names[i]; i++) {
        make_key(key, sizeof key, names[i]);
        round_trip(c, key, (const unsigned char *)names[i], strlen(names[i]));
    }
    /* the longest key S3 allows: 1024 bytes */
    memset(key, 'k', 1024);
    memcpy(key, prefix, strlen(prefix));
    key[1024] = 0;
    round_trip(c, key, (const unsigned char *)"long", 4);
    spim_s3_client_free(c);
}

/* ---- ListObjectsV2 against radosgw ------------------------------------------- */

/* Every key under `under`, page by page (max_keys per page), into keys[]. */
static int list_all(spim_s3_client *c, const char *under, int max_keys, char keys[][128], int cap, int *pages,
                    spim_s3_list_entry *first)
{
    spim_s3_list_options o;
    spim_s3_list *l = NULL;
    spim_error e;
    char token[1024] = "";
    int n = 0;
    size_t i;
    *pages = 0;
    memset(&o, 0, sizeof o);
    o.prefix = under;
    o.max_keys = max_keys;
    do {
        o.continuation_token = token;
        spim__error_clear(&e);
        if (spim_s3_list_objects(c, bucket, &o, &l, &e) != SPIM_OK) {
            printf("    page %d: %s\n", *pages + 1, e.message);
            return -1;
        }
        (*pages)++;
        CHECK_INT(200, l->http_status);
        CHECKF(max_keys == 0 || l->count <= (size_t)max_keys, "page %d has %zu keys, max %d", *pages, l->count,
               max_keys);
        for (i = 0; i < l->count && n < cap; i++) {
            if (n == 0 && first) *first = l->entries[0];
            snprintf(keys[n++], 128, "%s", l->entries[i].key);
        }
        CHECKF(strlen(l->next_token) < sizeof token, "token of %zu bytes", strlen(l->next_token));
        snprintf(token, sizeof token, "%s", l->next_token);
        CHECK(l->is_truncated == (token[0] != 0));
        if (first) first = NULL; /* entries die with the page */
        spim_s3_list_free(l);
    } while (token[0] && *pages < 100);
    return n;
}

TEST(list_pages_prefixes_and_hostile_keys)
{
    /* in byte order, as S3 lists them */
    static const char *const names[] = {
        "100% done.jpg", "a+plus.jpg", "a b space.jpg", "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.png",
        "plain.jpg", "x&y<z>\"q'.jpg", "\xf0\x9f\x98\x80.gif"
    };
    static const char *const sorted[] = { "100% done.jpg", "a b space.jpg", "a+plus.jpg",
        "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.png", "plain.jpg", "x&y<z>\"q'.jpg", "\xf0\x9f\x98\x80.gif" };
    char under[128], key[256], got[16][128], sibling[128], xy_etag[256] = "";
    spim_s3_object put;
    spim_s3_client *c;
    spim_s3_list_entry first;
    spim_error e;
    int i, n, pages;
    NEED_SERVER();
    c = server_client();
    REQUIRE(c != NULL);
    spim__error_clear(&e);
    REQUIRE(spim_s3_create_bucket(c, bucket, &e) == SPIM_OK);
    snprintf(under, sizeof under, "%slist/", prefix);
    snprintf(sibling, sizeof sibling, "%slist-sibling.jpg", prefix); /* shares "list" but not "list/" */
    memset(&put, 0, sizeof put);
    for (i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "%s%s", under, names[i]);
        CHECKF(spim_s3_put(c, bucket, key, names[i], strlen(names[i]), NULL, &put, &e) == SPIM_OK, "%s", e.message);
        if (i == 5) snprintf(xy_etag, sizeof xy_etag, "%s", put.etag);
    }
    CHECKF(spim_s3_put(c, bucket, sibling, "s", 1, NULL, NULL, &e) == SPIM_OK, "%s", e.message);

    n = list_all(c, under, 2, got, 16, &pages, &first);
    CHECK_INT(7, n);
    CHECK_INT(4, pages); /* 2 + 2 + 2 + 1 */
    for (i = 0; i < n && i < 7; i++) {
        snprintf(key, sizeof key, "%s%s", under, sorted[i]);
        CHECK_STR(key, got[i]);
    }
    n = list_all(c, under, 0, got, 16, &pages, NULL);
    CHECK_INT(7, n);
    CHECK_INT(1, pages);
    n = list_all(c, under, 3, got, 16, &pages, NULL);
    CHECK_INT(7, n);
    CHECK_INT(3, pages);
    /* sizes and ETags are the objects' own */
    {
        spim_s3_list_options o;
        spim_s3_list *l = NULL;
        char want[256];
        memset(&o, 0, sizeof o);
        snprintf(want, sizeof want, "%s%s", under, "x&y<z>\"q'.jpg");
        o.prefix = want;
        REQUIRE(spim_s3_list_objects(c, bucket, &o, &l, &e) == SPIM_OK);
        REQUIRE(l->count == 1);
        CHECK_STR(want, l->entries[0].key);
        CHECK_INT(strlen("x&y<z>\"q'.jpg"), l->entries[0].size);
        CHECK_STR(xy_etag, l->entries[0].etag);
        CHECK(l->entries[0].last_modified[0] == '2');
        spim_s3_list_free(l);
        /* start_after skips up to and including that key */
        o.prefix = under;
        snprintf(want, sizeof want, "%s%s", under, "plain.jpg");
        o.start_after = want;
        REQUIRE(spim_s3_list_objects(c, bucket, &o, &l, &e) == SPIM_OK);
        CHECK_INT(2, l->count);
        spim_s3_list_free(l);
        /* a prefix with no keys is an empty page, not an error */
        o.start_after = NULL;
        snprintf(want, sizeof want, "%snothing-here/", prefix);
        o.prefix = want;
        REQUIRE(spim_s3_list_objects(c, bucket, &o, &l, &e) == SPIM_OK);
        CHECK_INT(0, l->count);
        CHECK_INT(0, l->is_truncated);
        spim_s3_list_free(l);
        /* a missing bucket */
        l = (spim_s3_list *)&l;
        CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_list_objects(c, "spim-no-such-bucket-list", NULL, &l, &e));
        CHECK(l == NULL);
        CHECK(strstr(e.message, "NoSuchBucket") != NULL);
        CHECK_INT(SPIM_ERR_INVALID, spim_s3_list_objects(c, "", NULL, &l, &e));
        o.max_keys = -1;
        CHECK_INT(SPIM_ERR_INVALID, spim_s3_list_objects(c, bucket, &o, &l, &e));
    }
    /* the sibling is listed by the shorter prefix only */
    snprintf(key, sizeof key, "%slist", prefix);
    n = list_all(c, key, 5, got, 16, &pages, NULL);
    CHECK_INT(8, n);
    CHECK_STR(sibling, got[0]); /* '-' sorts before '/' */
    for (i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "%s%s", under, names[i]);
        spim_s3_delete(c, bucket, key, &e);
    }
    spim_s3_delete(c, bucket, sibling, &e);
    spim_s3_object_free(&put);
    spim_s3_client_free(c);
}

TEST(round_trip_bodies_0_bytes_to_20_mb)
{
    static const size_t sizes[] = { 0, 1, 1024 * 1024 + 1, 20 * 1024 * 1024 };
    unsigned char *data;
    char key[128];
    spim_s3_client *c;
    size_t i;
    uint32_t x = 2463534242u;
    NEED_SERVER();
    c = server_client();
    REQUIRE(c != NULL);
    data = (unsigned char *)malloc(sizes[3]);
    REQUIRE(data != NULL);
    for (i = 0; i < sizes[3]; i++) { /* every byte value, NULs and CR/LF included */
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(key, sizeof key, "%sbody-%zu.bin", prefix, sizes[i]);
        round_trip(c, key, data, sizes[i]);
    }
    free(data);
    spim_s3_client_free(c);
}

TEST(missing_key_and_bucket_are_not_found)
{
    spim_s3_client *c;
    spim_s3_object o;
    spim_error e;
    char key[128];
    NEED_SERVER();
    c = server_client();
    REQUIRE(c != NULL);
    memset(&o, 0, sizeof o);
    make_key(key, sizeof key, "never-written");
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_get(c, bucket, key, 0, &o, &e));
    CHECKF(strstr(e.message, "NoSuchKey") && strstr(e.message, "never-written") && strstr(e.message, "HTTP 404"),
           "message: %s", e.message);
    CHECK_INT(404, e.http_status);
    CHECK_INT(0, e.transient);
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_get(c, "spim-no-such-bucket-x", "k", 0, &o, &e));
    CHECKF(strstr(e.message, "NoSuchBucket") != NULL, "message: %s", e.message);
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_head(c, bucket, key, &o, &e));
    CHECKF(strstr(e.message, "NoSuchKey") != NULL, "message: %s", e.message);
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
}

static void log_to_buf(const char *line, void *user)
{
    spim__buf_append_str((spim_buf *)user, line);
    spim__buf_append_str((spim_buf *)user, "\n");
}

TEST(bad_credentials_are_reported)
{
    spim_s3_client *c;
    spim_error e;
    spim_buf log = SPIM_BUF_INIT;
    char key[128];
    const char *secret = "wrongSecretWrongSecretWrongSecret01234567";
    NEED_SERVER();
    make_key(key, sizeof key, "auth.txt");
    c = server_client_at(getenv("SPIM_TEST_S3_ENDPOINT"), getenv("SPIM_TEST_ACCESS_KEY"), secret, NULL);
    REQUIRE(c != NULL);
    spim__error_clear(&e);
    spim__log.sink = log_to_buf;
    spim__log.sink_user = &log;
    spim__log_set_level(SPIM_LOG_TRACE);
    CHECK_INT(SPIM_ERR_AUTH, spim_s3_put(c, bucket, key, "x", 1, NULL, NULL, &e));
    spim__log_set_level(SPIM_LOG_ERROR);
    spim__log.sink = NULL;
    spim__log.sink_user = NULL;
    REQUIRE(log.data != NULL);
    CHECKF(strstr((const char *)log.data, "s3 request") != NULL, "log: %s", (const char *)log.data);
    CHECK(strstr((const char *)log.data, "SignatureDoesNotMatch") != NULL);
    CHECK(strstr((const char *)log.data, secret) == NULL);
    CHECK(strstr((const char *)log.data, "Signature=") == NULL);
    spim_buf_free(&log);
    CHECKF(strstr(e.message, "SignatureDoesNotMatch") && strstr(e.message, "HTTP 403"), "message: %s", e.message);
    CHECK(strstr(e.message, secret) == NULL);
    CHECK(strstr(e.message, "Signature=") == NULL);
    CHECK_INT(403, e.http_status);
    CHECK_INT(0, e.transient);
    spim_s3_client_free(c);
    c = server_client_at(getenv("SPIM_TEST_S3_ENDPOINT"), "SPIMUNKNOWNKEYID0000", secret, NULL);
    REQUIRE(c != NULL);
    CHECK_INT(SPIM_ERR_AUTH, spim_s3_get(c, bucket, key, 0, NULL, &e));
    CHECKF(strstr(e.message, "InvalidAccessKeyId") != NULL, "message: %s", e.message);
    spim_s3_client_free(c);
}

TEST(other_users_bucket_is_access_denied)
{
    spim_s3_client *c;
    spim_error e;
    char key[128];
    NEED_SERVER();
    if (!getenv("SPIM_TEST_ACCESS_KEY2")) SKIP("no second user in servers.env");
    make_key(key, sizeof key, "private.txt");
    c = server_client_at(getenv("SPIM_TEST_S3_ENDPOINT"), getenv("SPIM_TEST_ACCESS_KEY2"),
                         getenv("SPIM_TEST_SECRET_KEY2"), NULL);
    REQUIRE(c != NULL);
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_AUTH, spim_s3_put(c, bucket, key, "x", 1, NULL, NULL, &e));
    CHECKF(strstr(e.message, "AccessDenied") != NULL, "message: %s", e.message);
    spim_s3_client_free(c);
}

TEST(get_size_limit_is_enforced_before_the_body)
{
    spim_s3_client *c;
    spim_s3_object o;
    spim_error e;
    char key[128], data[1000];
    NEED_SERVER();
    c = server_client();
    REQUIRE(c != NULL);
    memset(&o, 0, sizeof o);
    memset(data, 'z', sizeof data);
    make_key(key, sizeof key, "limit.bin");
    spim__error_clear(&e);
    REQUIRE(spim_s3_put(c, bucket, key, data, sizeof data, NULL, NULL, &e) == SPIM_OK);
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_s3_get(c, bucket, key, 999, &o, &e));
    CHECKF(strstr(e.message, "over the limit of 999 bytes") != NULL, "message: %s", e.message);
    CHECK_INT(0, o.body.len); /* refused on Content-Length: nothing read */
    CHECK_INT(1000, o.content_length);
    CHECK_INT(0, e.transient);
    CHECKF(spim_s3_get(c, bucket, key, 1000, &o, &e) == SPIM_OK, "%s", e.message);
    CHECK_INT(1000, o.body.len);
    spim_s3_delete(c, bucket, key, NULL);
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
}

TEST(clock_skew_is_corrected_from_the_server_date)
{
    spim_s3_client *c;
    spim_s3_options o;
    spim_error e;
    char key[128];
    int64_t off;
    NEED_SERVER();
    memset(&o, 0, sizeof o);
    o.max_attempts = 1; /* the correction must not need a retry */
    c = server_client_at(getenv("SPIM_TEST_S3_ENDPOINT"), getenv("SPIM_TEST_ACCESS_KEY"),
                         getenv("SPIM_TEST_SECRET_KEY"), &o);
    REQUIRE(c != NULL);
    c->clock_offset_s = 3600;
    make_key(key, sizeof key, "skew.txt");
    spim__error_clear(&e);
    CHECKF(spim_s3_put(c, bucket, key, "late", 4, NULL, NULL, &e) == SPIM_OK, "%s", e.message);
    off = c->clock_offset_s;
    CHECKF(off > -60 && off < 60, "offset after correction: %lld", (long long)off);
    CHECKF(spim_s3_delete(c, bucket, key, &e) == SPIM_OK, "%s", e.message);
    spim_s3_client_free(c);
}

TEST(bad_arguments_are_refused_locally)
{
    spim_s3_client *c;
    spim_s3_put_options po;
    spim_header meta;
    spim_buf url = SPIM_BUF_INIT;
    spim_error e;
    c = make_client("http://127.0.0.1:9", NULL, 0);
    REQUIRE(c != NULL);
    memset(&po, 0, sizeof po);
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_get(c, "b", "", 0, NULL, &e));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_put(c, "", "k", "x", 1, NULL, NULL, &e));
    meta.name = "bad name";
    meta.value = "v";
    po.metadata = &meta;
    po.metadata_count = 1;
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_put(c, "b", "k", "x", 1, &po, NULL, &e));
    meta.name = "ok";
    meta.value = "line\r\nX-Injected: 1";
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_put(c, "b", "k", "x", 1, &po, NULL, &e));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_presign_get(c, "b", "k", 0, &url, &e));
    CHECK_INT(SPIM_ERR_INVALID, spim_s3_presign_get(c, "b", "k", SPIM_PRESIGN_MAX_EXPIRES + 1, &url, &e));
    spim_buf_free(&url);
    spim_s3_client_free(c);
}

TEST(connection_refused_is_a_transient_network_error)
{
    spim_s3_client *c;
    spim_error e;
    c = make_client("http://127.0.0.1:9", NULL, 0);
    REQUIRE(c != NULL);
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_NETWORK, spim_s3_head(c, "b", "k", NULL, &e));
    CHECK_INT(1, e.transient);
    CHECK_INT(0, e.http_status);
    CHECKF(strstr(e.message, "3 attempts") != NULL, "message: %s", e.message);
    spim_s3_client_free(c);
}

/* ---- faults through tests/it/faultproxy.py -------------------------------------------- */

static FILE *proxy_pipe;
static char proxy_url[64];

static int proxy_start(void)
{
    char cmd[512], line[32];
    const char *root = getenv("SPIM_ROOT");
    snprintf(cmd, sizeof cmd, "exec python3 %s/tests/it/faultproxy.py --upstream %s", root ? root : ".",
             getenv("SPIM_TEST_S3_ENDPOINT"));
    proxy_pipe = popen(cmd, "r");
    if (!proxy_pipe || !fgets(line, sizeof line, proxy_pipe)) return 0;
    snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%d", atoi(line));
    return atoi(line) > 0;
}

static size_t collect(char *p, size_t s, size_t n, void *u)
{
    spim_buf_append((spim_buf *)u, p, s * n);
    return s * n;
}

/* A control request to the proxy; returns its answer ("" on failure). */
static char proxy_answer[128];
static const char *proxy_ctl(const char *what)
{
    CURL *h = curl_easy_init();
    spim_buf b = SPIM_BUF_INIT;
    char url[256];
    proxy_answer[0] = 0;
    snprintf(url, sizeof url, "%s/__faultproxy__/%s", proxy_url, what);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)&b);
    if (curl_easy_perform(h) == CURLE_OK && b.data)
        snprintf(proxy_answer, sizeof proxy_answer, "%.*s", (int)strcspn((const char *)b.data, "\n"),
                 (const char *)b.data);
    curl_easy_cleanup(h);
    spim_buf_free(&b);
    return proxy_answer;
}

static void proxy_stop(void)
{
    if (!proxy_pipe) return;
    proxy_ctl("quit");
    pclose(proxy_pipe);
    proxy_pipe = NULL;
}

#define NEED_PROXY() do { NEED_SERVER(); \
        if (!proxy_pipe && !proxy_start()) { REQUIRE(!"faultproxy started"); } \
        CHECK_STR("ok", proxy_ctl("reset")); } while (0)

static spim_s3_client *proxied_client(long timeout_ms)
{
    spim_s3_options o;
    memset(&o, 0, sizeof o);
    o.timeout_ms = timeout_ms;
    o.backoff_base_ms = 5; /* real sleeps, short ones */
    return server_client_at(proxy_url, getenv("SPIM_TEST_ACCESS_KEY"), getenv("SPIM_TEST_SECRET_KEY"), &o);
}

TEST(slowdown_is_retried_then_succeeds)
{
    spim_s3_client *c;
    spim_error e;
    spim_buf log = SPIM_BUF_INIT, where = SPIM_BUF_INIT;
    char key[128];
    NEED_PROXY();
    c = proxied_client(0);
    REQUIRE(c != NULL);
    make_key(key, sizeof key, "slowdown.txt");
    CHECK_STR("ok", proxy_ctl("set?mode=slowdown&count=2"));
    spim__error_clear(&e);
    spim__log.sink = log_to_buf;
    spim__log.sink_user = &log;
    spim__log_set_level(SPIM_LOG_WARN);
    CHECKF(spim_s3_put(c, bucket, key, "third time", 10, NULL, NULL, &e) == SPIM_OK, "%s", e.message);
    spim__log_set_level(SPIM_LOG_ERROR);
    spim__log.sink = NULL;
    spim__log.sink_user = NULL;
    CHECK_STR("requests=3 faults=2", proxy_ctl("stats"));
    /* the retry warnings name the object, not only the bucket */
    REQUIRE(spim_buf_appendf(&where, "PUT s3://%s/%s: attempt 1 failed (SlowDown), retrying", bucket, key) == SPIM_OK);
    CHECKF(log.data && strstr((const char *)log.data, (const char *)where.data) != NULL, "expected \"%s\" in: %s",
           (const char *)where.data, log.data ? (const char *)log.data : "");
    spim_buf_free(&where);
    spim_buf_free(&log);
    CHECK_STR("ok", proxy_ctl("set?mode=internal&count=2"));
    CHECKF(spim_s3_head(c, bucket, key, NULL, &e) == SPIM_OK, "%s", e.message);
    CHECK_STR("requests=6 faults=4", proxy_ctl("stats"));
    spim_s3_delete(c, bucket, key, NULL);
    spim_s3_client_free(c);
}

TEST(one_connection_is_kept_alive_across_requests)
{
    spim_s3_client *c;
    spim_s3_object o;
    spim_error e;
    char key[128];
    int i;
    NEED_PROXY();
    c = proxied_client(0);
    REQUIRE(c != NULL);
    memset(&o, 0, sizeof o);
    make_key(key, sizeof key, "keepalive.txt");
    spim__error_clear(&e);
    CHECKF(spim_s3_put(c, bucket, key, "same socket", 11, NULL, NULL, &e) == SPIM_OK, "%s", e.message);
    for (i = 0; i < 3; i++) {
        CHECKF(spim_s3_get(c, bucket, key, 0, &o, &e) == SPIM_OK, "%s", e.message);
        CHECKF(spim_s3_head(c, bucket, key, &o, &e) == SPIM_OK, "%s", e.message);
    }
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_get(c, bucket, "no-such-key-here", 0, &o, &e));
    CHECKF(spim_s3_delete(c, bucket, key, &e) == SPIM_OK, "%s", e.message);
    CHECK_STR("connections=2", proxy_ctl("connections")); /* the client's one + this query's */
    CHECK_STR("requests=9 faults=0", proxy_ctl("stats"));
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
}

TEST(slowdown_outlasting_the_attempts_fails_and_writes_nothing)
{
    spim_s3_client *c, *direct;
    spim_error e;
    char key[128];
    NEED_PROXY();
    c = proxied_client(0);
    direct = server_client();
    REQUIRE(c != NULL && direct != NULL);
    make_key(key, sizeof key, "never.txt");
    CHECK_STR("ok", proxy_ctl("set?mode=slowdown&count=10"));
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_HTTP, spim_s3_put(c, bucket, key, "nope", 4, NULL, NULL, &e));
    CHECKF(strstr(e.message, "SlowDown") && strstr(e.message, "HTTP 503") && strstr(e.message, "3 attempts"),
           "message: %s", e.message);
    CHECK_INT(1, e.transient);
    CHECK_INT(503, e.http_status);
    CHECK_STR("requests=3 faults=3", proxy_ctl("stats")); /* no request got through */
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_s3_head(direct, bucket, key, NULL, &e));
    spim_s3_client_free(c);
    spim_s3_client_free(direct);
}

TEST(connection_resets_are_retried)
{
    spim_s3_client *c;
    spim_s3_object o;
    spim_error e;
    char key[128];
    NEED_PROXY();
    c = proxied_client(0);
    REQUIRE(c != NULL);
    memset(&o, 0, sizeof o);
    make_key(key, sizeof key, "reset.txt");
    CHECK_STR("ok", proxy_ctl("set?mode=reset&count=2"));
    spim__error_clear(&e);
    CHECKF(spim_s3_put(c, bucket, key, "survivor", 8, NULL, NULL, &e) == SPIM_OK, "%s", e.message);
    CHECK_STR("ok", proxy_ctl("set?mode=reset&count=1"));
    CHECKF(spim_s3_get(c, bucket, key, 0, &o, &e) == SPIM_OK, "%s", e.message);
    CHECK_MEM("survivor", 8, o.body.data, o.body.len);
    spim_s3_delete(c, bucket, key, NULL);
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
}

TEST(resets_outlasting_the_attempts_leave_the_original)
{
    spim_s3_client *c, *direct;
    spim_s3_object o;
    spim_error e;
    char key[128];
    NEED_PROXY();
    c = proxied_client(0);
    direct = server_client();
    REQUIRE(c != NULL && direct != NULL);
    memset(&o, 0, sizeof o);
    make_key(key, sizeof key, "original.txt");
    spim__error_clear(&e);
    REQUIRE(spim_s3_put(direct, bucket, key, "original", 8, NULL, NULL, &e) == SPIM_OK);
    CHECK_STR("ok", proxy_ctl("set?mode=reset&count=10"));
    CHECK_INT(SPIM_ERR_NETWORK, spim_s3_put(c, bucket, key, "replacement", 11, NULL, NULL, &e));
    CHECK_INT(1, e.transient);
    CHECK_INT(0, e.http_status);
    CHECKF(strstr(e.message, "3 attempts") != NULL, "message: %s", e.message);
    CHECKF(spim_s3_get(direct, bucket, key, 0, &o, &e) == SPIM_OK, "%s", e.message);
    CHECK_MEM("original", 8, o.body.data, o.body.len);
    spim_s3_delete(direct, bucket, key, NULL);
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
    spim_s3_client_free(direct);
}

TEST(listing_faults_are_retried_or_reported)
{
    spim_s3_client *c;
    spim_s3_list_options o;
    spim_s3_list *l = NULL;
    spim_error e;
    char key[160], under[128];
    int i;
    NEED_PROXY();
    c = proxied_client(0);
    REQUIRE(c != NULL);
    snprintf(under, sizeof under, "%sproxied-list/", prefix);
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%sk%d", under, i);
        REQUIRE(spim_s3_put(c, bucket, key, "x", 1, NULL, NULL, &e) == SPIM_OK);
    }
    memset(&o, 0, sizeof o);
    o.prefix = under;
    CHECK_STR("ok", proxy_ctl("reset"));
    CHECK_STR("ok", proxy_ctl("set?mode=slowdown&count=2"));
    spim__error_clear(&e);
    CHECKF(spim_s3_list_objects(c, bucket, &o, &l, &e) == SPIM_OK, "%s", e.message);
    CHECK_STR("requests=3 faults=2", proxy_ctl("stats"));
    if (l) CHECK_INT(3, l->count);
    spim_s3_list_free(l);
    l = NULL;
    /* half a listing is never parsed: the cut body is fetched again */
    CHECK_STR("ok", proxy_ctl("set?mode=truncate&count=1"));
    CHECKF(spim_s3_list_objects(c, bucket, &o, &l, &e) == SPIM_OK, "%s", e.message);
    if (l) CHECK_INT(3, l->count);
    spim_s3_list_free(l);
    l = (spim_s3_list *)&l;
    CHECK_STR("ok", proxy_ctl("set?mode=slowdown&count=3"));
    CHECK_INT(SPIM_ERR_HTTP, spim_s3_list_objects(c, bucket, &o, &l, &e));
    CHECK(l == NULL);
    CHECK_INT(1, e.transient);
    CHECKF(strstr(e.message, "ListObjectsV2 s3://") && strstr(e.message, "SlowDown") &&
           strstr(e.message, "3 attempts"), "message \"%s\"", e.message);
    CHECK_STR("ok", proxy_ctl("reset"));
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%sk%d", under, i);
        spim_s3_delete(c, bucket, key, NULL);
    }
    spim_s3_client_free(c);
}

TEST(truncated_body_is_fetched_again)
{
    spim_s3_client *c;
    spim_s3_object o;
    spim_error e;
    char key[128];
    unsigned char data[300000];
    size_t i;
    NEED_PROXY();
    c = proxied_client(0);
    REQUIRE(c != NULL);
    memset(&o, 0, sizeof o);
    for (i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 7 + (i >> 8));
    make_key(key, sizeof key, "truncated.bin");
    spim__error_clear(&e);
    REQUIRE(spim_s3_put(c, bucket, key, data, sizeof data, NULL, NULL, &e) == SPIM_OK);
    CHECK_STR("ok", proxy_ctl("set?mode=truncate&count=1"));
    CHECKF(spim_s3_get(c, bucket, key, 0, &o, &e) == SPIM_OK, "%s", e.message);
    CHECK_MEM(data, sizeof data, o.body.data, o.body.len);
    CHECK_STR("requests=3 faults=1", proxy_ctl("stats"));
    spim_s3_delete(c, bucket, key, NULL);
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
}

TEST(get_size_limit_is_enforced_while_reading_without_length)
{
    spim_s3_client *c;
    spim_s3_object o;
    spim_error e;
    char key[128], data[1000];
    NEED_PROXY();
    c = proxied_client(0);
    REQUIRE(c != NULL);
    memset(&o, 0, sizeof o);
    memset(data, 'q', sizeof data);
    make_key(key, sizeof key, "chunked.bin");
    spim__error_clear(&e);
    REQUIRE(spim_s3_put(c, bucket, key, data, sizeof data, NULL, NULL, &e) == SPIM_OK);
    CHECK_STR("ok", proxy_ctl("set?mode=chunked&count=2"));
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_s3_get(c, bucket, key, 999, &o, &e));
    CHECKF(strstr(e.message, "over the limit of 999 bytes") != NULL, "message: %s", e.message);
    CHECK_INT(-1, o.content_length);
    CHECK(o.body.len <= 999);
    CHECKF(spim_s3_get(c, bucket, key, 1000, &o, &e) == SPIM_OK, "%s", e.message);
    CHECK_MEM(data, sizeof data, o.body.data, o.body.len);
    CHECK_STR("requests=3 faults=2", proxy_ctl("stats"));
    spim_s3_delete(c, bucket, key, NULL);
    spim_s3_object_free(&o);
    spim_s3_client_free(c);
}

TEST(stalled_server_times_out_and_is_retried)
{
    spim_s3_client *c;
    spim_error e;
    char key[128];
    NEED_PROXY();
    c = proxied_client(1000);
    REQUIRE(c != NULL);
    make_key(key, sizeof key, "stall.txt");
    CHECK_STR("ok", proxy_ctl("set?mode=stall&count=1&stall=8"));
    spim__error_clear(&e);
    CHECKF(spim_s3_put(c, bucket, key, "patient", 7, NULL, NULL, &e) == SPIM_OK, "%s", e.message);
    CHECK_STR("requests=2 faults=1", proxy_ctl("stats"));
    CHECK_STR("ok", proxy_ctl("set?mode=stall&count=3&stall=8"));
    CHECK_INT(SPIM_ERR_NETWORK, spim_s3_get(c, bucket, key, 0, NULL, &e));
    CHECKF(strstr(e.message, "imeout") || strstr(e.message, "timed out"), "message: %s", e.message);
    CHECK_INT(1, e.transient);
    spim_s3_delete(c, bucket, key, NULL);
    spim_s3_client_free(c);
}

/* The PUT digest: SHA-256 and CRC-32C in one pass equal each alone. */
TEST(payload_digest_is_sha256_and_crc32c_in_one_pass)
{
    static unsigned char big[100000];
    char hash[SPIM_SHA256_HEX_SIZE], alone[SPIM_SHA256_HEX_SIZE], crc[16], want[16];
    size_t i;
    spim__s3_payload_digest("123456789", 9, hash, crc);
    spim__sha256_hex("123456789", 9, alone);
    CHECK_STR(alone, hash);
    CHECK_STR("4waSgw==", crc);
    for (i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7 + (i >> 10));
    spim__s3_payload_digest(big, sizeof big, hash, crc);
    spim__sha256_hex(big, sizeof big, alone);
    spim__s3_crc_base64(spim__crc32c(0, big, sizeof big), 4, want);
    CHECK_STR(alone, hash);
    CHECK_STR(want, crc);
    spim__s3_payload_digest(NULL, 0, hash, NULL);
    CHECK_STR("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hash);
}

static int body_checks(const char *name, const char *value, const char *type, const char *body)
{
    spim__s3_call call;
    spim_s3_object obj;
    int ok;
    memset(&call, 0, sizeof call);
    memset(&obj, 0, sizeof obj);
    call.out = &obj;
    call.verify = 1;
    if (name) spim__s3_checksum_header(&call, name, strlen(name), value, strlen(value));
    if (type) spim__s3_checksum_header(&call, "x-amz-checksum-type", 19, type, strlen(type));
    spim_buf_append(&obj.body, body, strlen(body));
    ok = spim__s3_checksum_ok(&call);
    spim_buf_free(&obj.body);
    return ok;
}

/* A full-object CRC32, CRC32C or CRC64NVME is checked; a composite one
   ("-N", or x-amz-checksum-type: COMPOSITE) and SHA ones are not. */
TEST(get_checksums_checked_full_object_only)
{
    CHECK_INT(1, body_checks("x-amz-checksum-crc32", "y/Q5Jg==", NULL, "123456789"));
    CHECK_INT(0, body_checks("x-amz-checksum-crc32", "y/Q5Jg==", NULL, "123456788"));
    CHECK_INT(1, body_checks("X-Amz-Checksum-CRC32C", "4waSgw==", "FULL_OBJECT", "123456789"));
    CHECK_INT(0, body_checks("x-amz-checksum-crc32c", "4waSgw==", NULL, "12345678"));
    CHECK_INT(1, body_checks("x-amz-checksum-crc64nvme", "rosUhgp5mIg=", NULL, "123456789"));
    CHECK_INT(0, body_checks("x-amz-checksum-crc64nvme", "rosUhgp5mIg=", NULL, "023456789"));
    CHECK_INT(1, body_checks("x-amz-checksum-crc32c", "AAAAAA==-3", NULL, "123456789"));
    CHECK_INT(1, body_checks("x-amz-checksum-crc32c", "AAAAAA==", "COMPOSITE", "123456789"));
    CHECK_INT(1, body_checks("x-amz-checksum-sha256", "AAAA", NULL, "123456789"));
    CHECK_INT(1, body_checks(NULL, NULL, NULL, "123456789"));
}

/* The SDKs' switches: when_supported / when_required (any case), else a
   configuration error naming the variable. */
TEST(checksum_switches_read_like_the_sdks)
{
    spim_s3_options o;
    spim_credentials cr;
    spim_s3_client *c = NULL;
    spim_error err;
    memset(&o, 0, sizeof o);
    memset(&cr, 0, sizeof cr);
    strcpy(cr.access_key_id, "AKID");
    strcpy(cr.secret_access_key, "secret");
    o.credentials = &cr;
    setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_REQUIRED", 1);
    setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_supported", 1);
    CHECK_INT(SPIM_OK, spim_s3_client_create(&o, &c, &err));
    if (c) CHECK_INT(0, c->send_checksum);
    if (c) CHECK_INT(1, c->verify_checksum);
    spim_s3_client_free(c);
    setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "sometimes", 1);
    CHECK_INT(SPIM_ERR_CONFIG, spim_s3_client_create(&o, &c, &err));
    CHECK_STR("s3: AWS_RESPONSE_CHECKSUM_VALIDATION=\"sometimes\": expected when_supported or when_required",
              err.message);
    unsetenv("AWS_REQUEST_CHECKSUM_CALCULATION");
    unsetenv("AWS_RESPONSE_CHECKSUM_VALIDATION");
    CHECK_INT(SPIM_OK, spim_s3_client_create(&o, &c, &err));
    if (c) CHECK_INT(1, c->send_checksum && c->verify_checksum);
    spim_s3_client_free(c);
}

/* Nothing to delete where the bucket does not exist: success (a log line). */
TEST(delete_in_a_missing_bucket_succeeds)
{
    spim_s3_client *c;
    spim_error e;
    NEED_SERVER();
    c = server_client_at(getenv("SPIM_TEST_S3_ENDPOINT"), getenv("SPIM_TEST_ACCESS_KEY"),
                         getenv("SPIM_TEST_SECRET_KEY"), NULL);
    REQUIRE(c != NULL);
    spim__error_clear(&e);
    CHECKF(spim_s3_delete(c, "spim-no-such-bucket-here", "xformed_a.jpg", &e) == SPIM_OK, "%s", e.message);
    CHECK_INT(SPIM_OK, e.status);
    spim_s3_client_free(c);
}

int main(void)
{
    snprintf(bucket, sizeof bucket, "spim-test-s3");
    snprintf(prefix, sizeof prefix, "run-%ld-%ld/", (long)getpid(), (long)(spim__wall_ms() / 1000));
    spim__log_set_level(SPIM_LOG_ERROR); /* retries log WARN lines; AWS_LAMBDA_LOG_LEVEL shows them */
    spim_log_init_from_env();
    RUN(credentials_file_profiles_comments_whitespace);
    RUN(credentials_file_reports_bad_input);
    RUN(credentials_from_environment_then_file);
    RUN(client_without_credentials_fails_clearly);
    RUN(s3_uris_are_split);
    RUN(bucket_names_for_virtual_hosting);
    RUN(aws_endpoint_addressing);
    RUN(region_and_endpoint_from_environment);
    RUN(ca_bundle_is_found_or_given);
    RUN(error_xml_parsing);
    RUN(status_and_retry_classification);
    RUN(http_dates);
    RUN(list_document_is_decoded);
    RUN(list_without_encoding_type_keeps_keys_verbatim);
    RUN(hostile_list_documents_are_refused_precisely);
    RUN(every_prefix_of_a_list_document_is_handled);
    RUN(bad_arguments_are_refused_locally);
    RUN(connection_refused_is_a_transient_network_error);
    RUN(create_bucket_is_idempotent);
    RUN(round_trip_hostile_keys);
    RUN(list_pages_prefixes_and_hostile_keys);
    RUN(round_trip_bodies_0_bytes_to_20_mb);
    RUN(missing_key_and_bucket_are_not_found);
    RUN(bad_credentials_are_reported);
    RUN(other_users_bucket_is_access_denied);
    RUN(get_size_limit_is_enforced_before_the_body);
    RUN(clock_skew_is_corrected_from_the_server_date);
    RUN(slowdown_is_retried_then_succeeds);
    RUN(one_connection_is_kept_alive_across_requests);
    RUN(slowdown_outlasting_the_attempts_fails_and_writes_nothing);
    RUN(connection_resets_are_retried);
    RUN(resets_outlasting_the_attempts_leave_the_original);
    RUN(truncated_body_is_fetched_again);
    RUN(listing_faults_are_retried_or_reported);
    RUN(payload_digest_is_sha256_and_crc32c_in_one_pass);
    RUN(get_checksums_checked_full_object_only);
    RUN(checksum_switches_read_like_the_sdks);
    RUN(delete_in_a_missing_bucket_succeeds);
    RUN(get_size_limit_is_enforced_while_reading_without_length);
    RUN(stalled_server_times_out_and_is_retried);
    proxy_stop();
    return spim_test_finish();
}
