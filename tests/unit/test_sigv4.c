/* sigv4: the S3 API reference's published examples (built in), the rules
   the signer promises (expiry limits, token, ignored headers, S3 paths kept
   verbatim, canonical query and headers), and, when ../shared is there,
   every case of the AWS SigV4 test suites and botocore's S3 edge cases. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <dirent.h>

#define DOC_AK "AKIAIOSFODNN7EXAMPLE"
#define DOC_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_TIME 1369353600 /* 2013-05-24T00:00:00Z */
#define SUITE_AK "AKIDEXAMPLE"
#define SUITE_SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TIME 1440938160 /* 2015-08-30T12:36:00Z */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static spim_credentials creds(const char *ak, const char *sk, const char *token)
{
    spim_credentials c;
    memset(&c, 0, sizeof c);
    snprintf(c.access_key_id, sizeof c.access_key_id, "%s", ak);
    snprintf(c.secret_access_key, sizeof c.secret_access_key, "%s", sk);
    snprintf(c.session_token, sizeof c.session_token, "%s", token ? token : "");
    return c;
}

static spim_sigv4_params s3_params(const spim_credentials *c, int64_t time)
{
    spim_sigv4_params p;
    memset(&p, 0, sizeof p);
    p.credentials = c;
    p.region = "us-east-1";
    p.service = "s3";
    p.time = time;
    p.mode = SPIM_SIGV4_S3;
    return p;
}

static spim_sigv4_request request(const char *method, const char *url, const spim_header *h, size_t n)
{
    spim_sigv4_request r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.url = url;
    r.headers = h;
    r.header_count = n;
    return r;
}

static const char *find_added(const spim_sigv4_result *res, const char *name)
{
    size_t i;
    for (i = 0; i < res->add_header_count; i++)
        if (strcmp(res->add_headers[i].name, name) == 0) return res->add_headers[i].value;
    return NULL;
}

static const char *line_of(const char *text, int n, char *out, size_t cap)
{
    while (n-- > 0 && text && (text = strchr(text, '\n')) != NULL) text++;
    snprintf(out, cap, "%.*s", text ? (int)strcspn(text, "\n") : 0, text ? text : "");
    return out;
}

/* ---- the S3 API reference examples (values copied from s3-vectors.json) -- */

TEST(s3_doc_get_object_with_range)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_header h[] = { { "Range", "bytes=0-9" } };
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/test.txt", h, 1);
    spim_sigv4_result res;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
              "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
              "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              (const char *)res.canonical_request.data);
    CHECK_STR("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
              "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
              (const char *)res.string_to_sign.data);
    CHECK_STR("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", res.signature);
    CHECK_STR("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
              "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
              find_added(&res, "Authorization"));
    CHECK_STR("20130524T000000Z", find_added(&res, "X-Amz-Date"));
    CHECK_STR(EMPTY_SHA, find_added(&res, "X-Amz-Content-SHA256"));
    CHECK_INT(3, res.add_header_count);
    CHECK_STR("Authorization", res.add_headers[res.add_header_count - 1].name);
    spim_sigv4_result_free(&res);
}

TEST(s3_doc_put_object_dollar_key)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_header h[] = {
        { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
        { "x-amz-date", "20130524T000000Z" },
        { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
        { "x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072" },
    };
    spim_sigv4_request r = request("PUT", "https://examplebucket.s3.amazonaws.com/test%24file.text", h, 4);
    spim_sigv4_result res;
    r.body = "Welcome to Amazon S3.";
    r.body_len = strlen("Welcome to Amazon S3.");
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
              "host:examplebucket.s3.amazonaws.com\n"
              "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
              "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
              "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
              "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
              (const char *)res.canonical_request.data);
    CHECK_STR("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
              "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
              (const char *)res.string_to_sign.data);
    CHECK_STR("98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd", res.signature);
    /* the request carried its own date and content hash: only Authorization is added */
    CHECK_INT(1, res.add_header_count);
    spim_sigv4_result_free(&res);
}

TEST(s3_doc_get_bucket_lifecycle)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", NULL, 0);
    spim_sigv4_result res;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
              "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
              "x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n"
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              (const char *)res.canonical_request.data);
    CHECK_STR("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
              "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
              (const char *)res.string_to_sign.data);
    CHECK_STR("fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543", res.signature);
    spim_sigv4_result_free(&res);
}

TEST(s3_doc_list_objects)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", NULL, 0);
    spim_sigv4_result res;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
              "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
              "x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n"
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              (const char *)res.canonical_request.data);
    CHECK_STR("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
              "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
              (const char *)res.string_to_sign.data);
    CHECK_STR("34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7", res.signature);
    spim_sigv4_result_free(&res);
}

TEST(s3_doc_presigned_get_86400s)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/test.txt", NULL, 0);
    spim_sigv4_result res;
    spim_buf url = SPIM_BUF_INIT;
    p.expires = 86400;
    REQUIRE(spim_sigv4_presign(&r, &p, &url, &res, NULL) == SPIM_OK);
    CHECK_STR("GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
              "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
              "&X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD",
              (const char *)res.canonical_request.data);
    CHECK_STR("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
              "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04",
              (const char *)res.string_to_sign.data);
    CHECK_STR("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
              "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
              "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
              "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
              (const char *)url.data);
    CHECK_STR("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", res.signature);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
}

/* ---- promises of the signer ----------------------------------------------- */

TEST(presign_rejects_expires_outside_1_to_604800)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/a", NULL, 0);
    spim_buf url = SPIM_BUF_INIT;
    spim_error e;
    static const long bad[] = { 0, 604801, -1 };
    static const long good[] = { 1, 604800 };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spim__error_clear(&e);
        p.expires = bad[i];
        CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_presign(&r, &p, &url, NULL, &e));
        CHECKF(strstr(e.message, "X-Amz-Expires must be 1..604800 seconds") != NULL, "message: %s", e.message);
    }
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        char want[64];
        p.expires = good[i];
        CHECK_INT(SPIM_OK, spim_sigv4_presign(&r, &p, &url, NULL, &e));
        snprintf(want, sizeof want, "&X-Amz-Expires=%ld&", good[i]);
        CHECK(url.data && strstr((const char *)url.data, want) != NULL);
    }
    spim_buf_free(&url);
}

TEST(presign_puts_signature_last_and_signs_the_session_token)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, "TOKEN/with+special=");
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/k?versionId=3&acl", NULL, 0);
    spim_sigv4_result res;
    spim_buf url = SPIM_BUF_INIT;
    const char *sig;
    p.expires = 60;
    REQUIRE(spim_sigv4_presign(&r, &p, &url, &res, NULL) == SPIM_OK);
    sig = strstr((const char *)url.data, "X-Amz-Signature=");
    REQUIRE(sig != NULL);
    CHECK(sig[-1] == '&');
    CHECK_INT(strlen("X-Amz-Signature=") + 64, strlen(sig)); /* nothing after it */
    CHECK_STR(res.signature, sig + strlen("X-Amz-Signature="));
    CHECK(strstr((const char *)url.data, "&X-Amz-Security-Token=TOKEN%2Fwith%2Bspecial%3D&") != NULL);
    /* the request's own parameters come first on the URL, re-encoded; in the
       canonical query they sort after the upper-case X-Amz-* */
    CHECK(strncmp((const char *)url.data, "https://examplebucket.s3.amazonaws.com/k?versionId=3&acl=&X-Amz-Algorithm=", 73) == 0);
    CHECK(strncmp((const char *)res.canonical_request.data, "GET\n/k\nX-Amz-Algorithm=", 23) == 0);
    CHECK(strstr((const char *)res.canonical_request.data,
                 "&X-Amz-Security-Token=TOKEN%2Fwith%2Bspecial%3D&X-Amz-SignedHeaders=host&acl=&versionId=3\n") != NULL);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
}

TEST(header_signing_adds_and_signs_the_session_token)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, "FQoGZXIvYXdzEXAMPLE/TOKEN+=");
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/a", NULL, 0);
    spim_sigv4_result res;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("FQoGZXIvYXdzEXAMPLE/TOKEN+=", find_added(&res, "X-Amz-Security-Token"));
    CHECK(strstr((const char *)res.canonical_request.data, "\nx-amz-security-token:FQoGZXIvYXdzEXAMPLE/TOKEN+=\n") != NULL);
    CHECK_STR("host;x-amz-content-sha256;x-amz-date;x-amz-security-token", (const char *)res.signed_headers.data);
    CHECK_INT(4, res.add_header_count);
    spim_sigv4_result_free(&res);
}

TEST(omit_session_token_adds_it_unsigned)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, "TOKEN");
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/a", NULL, 0);
    spim_sigv4_result res;
    spim_buf url = SPIM_BUF_INIT;
    p.flags = SPIM_SIGV4_OMIT_SESSION_TOKEN;
    p.expires = 10;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("TOKEN", find_added(&res, "X-Amz-Security-Token"));
    CHECK(strstr((const char *)res.canonical_request.data, "security-token") == NULL);
    spim_sigv4_result_free(&res);
    REQUIRE(spim_sigv4_presign(&r, &p, &url, &res, NULL) == SPIM_OK);
    CHECK(strstr((const char *)url.data, "&X-Amz-Security-Token=TOKEN&X-Amz-Signature=") != NULL);
    CHECK(strstr((const char *)res.canonical_request.data, "Security-Token") == NULL);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
}

TEST(ignored_headers_are_not_signed)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_header h[] = {
        { "User-Agent", "sparta/1.0" }, { "Expect", "100-continue" }, { "Transfer-Encoding", "chunked" },
        { "Connection", "keep-alive" }, { "X-Amzn-Trace-Id", "Root=1-5759e988" }, { "Content-Type", "image/png" },
        { "authorization", "stale from a previous attempt" },
    };
    spim_sigv4_request r = request("PUT", "https://examplebucket.s3.amazonaws.com/a.png", h, 7);
    spim_sigv4_result res;
    spim_buf url = SPIM_BUF_INIT;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("content-type;host;x-amz-content-sha256;x-amz-date", (const char *)res.signed_headers.data);
    CHECK(strstr((const char *)res.canonical_request.data, "user-agent") == NULL);
    CHECK(strstr((const char *)res.canonical_request.data, "chunked") == NULL);
    spim_sigv4_result_free(&res);
    p.expires = 10;
    REQUIRE(spim_sigv4_presign(&r, &p, &url, &res, NULL) == SPIM_OK);
    CHECK_STR("content-type;host", (const char *)res.signed_headers.data);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
}

TEST(s3_mode_keeps_dot_segments_and_double_slashes_verbatim)
{
    static const char *const paths[] = { "/a//b/./c/../d", "/./x", "/../y", "//", "/k/", "/%2E%2E/z" };
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    size_t i;
    for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char url[128], line[128];
        spim_sigv4_request r;
        spim_sigv4_result res;
        snprintf(url, sizeof url, "https://examplebucket.s3.amazonaws.com%s", paths[i]);
        r = request("DELETE", url, NULL, 0);
        REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
        CHECK_STR(paths[i], line_of((const char *)res.canonical_request.data, 1, line, sizeof line));
        spim_sigv4_result_free(&res);
    }
}

TEST(generic_mode_normalises_and_encodes_again)
{
    static const char *const in[] = { "/a//b/./c/../d", "/./", "/..", "/a/b/..", "/x/", "/a%20b", "/ሴ", "" };
    static const char *const want[] = { "/a/b/d", "/", "/", "/a", "/x/", "/a%2520b", "/%E1%88%B4", "/" };
    spim_credentials c = creds(SUITE_AK, SUITE_SK, NULL);
    spim_sigv4_params p = s3_params(&c, SUITE_TIME);
    size_t i;
    p.mode = SPIM_SIGV4_GENERIC;
    p.service = "service";
    for (i = 0; i < sizeof in / sizeof in[0]; i++) {
        char url[128], line[128];
        spim_sigv4_request r;
        spim_sigv4_result res;
        snprintf(url, sizeof url, "https://example.amazonaws.com%s", in[i]);
        r = request("GET", url, NULL, 0);
        REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
        CHECK_STR(want[i], line_of((const char *)res.canonical_request.data, 1, line, sizeof line));
        CHECK(strstr((const char *)res.canonical_request.data, "x-amz-content-sha256") == NULL);
        spim_sigv4_result_free(&res);
    }
}

TEST(canonical_query_decodes_reencodes_and_sorts)
{
    static const char *const in[] = {
        "b=2&a=1", "lifecycle", "a=%7e&a=~&A=x", "k=a+b&k=a%20b", "p=a%2Fb%3d", "z=1&&y=", "%zz=%4",
        "Param-3=Value3&Param=Value2&%E1%88%B4=Value1", "x=%C3%BC&x=%c3%bc", ""
    };
    static const char *const want[] = {
        "a=1&b=2", "lifecycle=", "A=x&a=~&a=~", "k=a%20b&k=a%2Bb", "p=a%2Fb%3D", "y=&z=1", "%25zz=%254",
        "%E1%88%B4=Value1&Param=Value2&Param-3=Value3", "x=%C3%BC&x=%C3%BC", ""
    };
    size_t i;
    for (i = 0; i < sizeof in / sizeof in[0]; i++) {
        spim_buf out = SPIM_BUF_INIT;
        REQUIRE(spim__sigv4_canonical_query(&out, in[i], strlen(in[i])) == SPIM_OK);
        CHECK_STR(want[i], (const char *)out.data);
        spim_buf_free(&out);
    }
}

TEST(canonical_headers_trim_fold_and_join_duplicates)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_header h[] = {
        { "X-Amz-Meta-B", "  two   inner   runs  " }, { "x-amz-meta-a", "first" },
        { "X-AMZ-META-A", "second" }, { "x-amz-meta-c", "line1\n  line2\r\n\tline3" }, { "x-amz-meta-a", "" },
    };
    spim_sigv4_request r = request("PUT", "https://h.example:8443/k", h, 5);
    spim_sigv4_result res;
    r.payload_hash = SPIM_UNSIGNED_PAYLOAD;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("PUT\n/k\n\nhost:h.example:8443\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20130524T000000Z\n"
              "x-amz-meta-a:first,second,\nx-amz-meta-b:two inner runs\nx-amz-meta-c:line1 line2 line3\n\n"
              "host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b;x-amz-meta-c\nUNSIGNED-PAYLOAD",
              (const char *)res.canonical_request.data);
    CHECK_STR(SPIM_UNSIGNED_PAYLOAD, find_added(&res, "X-Amz-Content-SHA256"));
    spim_sigv4_result_free(&res);
}

TEST(host_drops_default_ports_userinfo_and_case)
{
    static const char *const urls[] = {
        "https://Bucket.S3.Amazonaws.com:443/k", "http://127.0.0.1:80/k", "http://127.0.0.1:7480/k",
        "https://user:pw@h.example/k", "http://[::1]:9000/k", "https://h.example:80/k"
    };
    static const char *const want[] = {
        "host:bucket.s3.amazonaws.com", "host:127.0.0.1", "host:127.0.0.1:7480",
        "host:h.example", "host:[::1]:9000", "host:h.example:80"
    };
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    size_t i;
    for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        spim_sigv4_request r = request("HEAD", urls[i], NULL, 0);
        spim_sigv4_result res;
        char line[128];
        REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
        CHECK_STR(want[i], line_of((const char *)res.canonical_request.data, 3, line, sizeof line));
        spim_sigv4_result_free(&res);
    }
}

TEST(payload_hash_choices)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_sigv4_request r = request("PUT", "https://examplebucket.s3.amazonaws.com/k", NULL, 0);
    spim_sigv4_result res;
    spim_header h[] = { { "x-amz-content-sha256", SPIM_STREAMING_PAYLOAD } };
    spim_error e;
    r.body = "hello";
    r.body_len = 5;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", res.payload_hash);
    spim_sigv4_result_free(&res);
    r.headers = h;
    r.header_count = 1;
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR(SPIM_STREAMING_PAYLOAD, res.payload_hash);
    CHECK(find_added(&res, "X-Amz-Content-SHA256") == NULL);
    spim_sigv4_result_free(&res);
    r.payload_hash = SPIM_UNSIGNED_PAYLOAD; /* contradicts the header */
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    CHECK(strstr(e.message, "x-amz-content-sha256") != NULL);
    spim_sigv4_result_free(&res);
}

TEST(bad_input_is_rejected_with_a_reason)
{
    spim_credentials c = creds(DOC_AK, DOC_SK, NULL);
    spim_credentials none = creds("", "", NULL);
    spim_sigv4_params p = s3_params(&c, DOC_TIME);
    spim_header inject[] = { { "x-amz-meta-a", "v\r\nX-Evil: 1" } };
    spim_header date[] = { { "X-Amz-Date", "20200101T000000Z" } };
    spim_header badname[] = { { "x-amz-meta(a)", "v" } };
    spim_sigv4_request r = request("GET", "https://examplebucket.s3.amazonaws.com/k", inject, 1);
    spim_sigv4_result res;
    spim_error e;
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    CHECK(strstr(e.message, "line break") != NULL);
    spim_sigv4_result_free(&res);
    r.headers = badname;
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    CHECK(strstr(e.message, "header name") != NULL);
    spim_sigv4_result_free(&res);
    r.headers = date;
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    CHECK(strstr(e.message, "X-Amz-Date") != NULL);
    spim_sigv4_result_free(&res);
    r.header_count = 0;
    r.url = "examplebucket/k";
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    spim_sigv4_result_free(&res);
    r.url = "http://127.0.0.1:99999/k";
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    CHECK(strstr(e.message, "port") != NULL);
    spim_sigv4_result_free(&res);
    r.url = "https://examplebucket.s3.amazonaws.com/k";
    p.credentials = &none;
    CHECK_INT(SPIM_ERR_AUTH, spim_sigv4_sign(&r, &p, &res, &e));
    CHECK(strstr(e.message, DOC_SK) == NULL);
    spim_sigv4_result_free(&res);
    p.credentials = &c;
    p.region = "us-east-1/evil";
    CHECK_INT(SPIM_ERR_INVALID, spim_sigv4_sign(&r, &p, &res, &e));
    spim_sigv4_result_free(&res);
}

TEST(uri_encode_and_amz_date)
{
    spim_buf b = SPIM_BUF_INIT;
    char d[17];
    REQUIRE(spim_uri_encode(&b, "a b/c~d+e=f&ü*'()!$,", strlen("a b/c~d+e=f&ü*'()!$,"), 1) == SPIM_OK);
    CHECK_STR("a%20b/c~d%2Be%3Df%26%C3%BC%2A%27%28%29%21%24%2C", (const char *)b.data);
    spim_buf_reset(&b);
    REQUIRE(spim_uri_encode(&b, "a/b", 3, 0) == SPIM_OK);
    CHECK_STR("a%2Fb", (const char *)b.data);
    spim_buf_reset(&b);
    REQUIRE(spim_uri_encode(&b, "", 0, 0) == SPIM_OK);
    CHECK_STR("", (const char *)b.data);
    spim_buf_free(&b);
    spim__amz_date(DOC_TIME, d);
    CHECK_STR("20130524T000000Z", d);
    spim__amz_date(SUITE_TIME, d);
    CHECK_STR("20150830T123600Z", d);
    spim__amz_date(951782400 + 86399, d); /* 2000-02-29, a leap day */
    CHECK_STR("20000229T235959Z", d);
    spim__amz_date(0, d);
    CHECK_STR("19700101T000000Z", d);
    spim__amz_date(-1, d);
    CHECK_STR("19691231T235959Z", d);
    spim__amz_date(INT64_MAX, d); /* out of range: clamped, still 16 characters */
    CHECK_STR("99991231T235959Z", d);
    spim__amz_date(INT64_MIN, d);
    CHECK_STR("00000101T000000Z", d);
}

/* AWS General Reference, "Examples of how to derive a signing key". */
TEST(signing_key_matches_the_aws_example)
{
    unsigned char key[SPIM_SHA256_SIZE];
    char hex[SPIM_SHA256_HEX_SIZE];
    spim__sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam", key);
    spim__hex(key, sizeof key, hex);
    CHECK_STR("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d", hex);
}

/* ---- the AWS test suites, read from ../shared ----------------------------- */

static char shared_dir[1024];

static int have_shared(void)
{
    struct stat st;
    const char *env = getenv("SPIM_SHARED");
    snprintf(shared_dir, sizeof shared_dir, "%s", env && *env ? env : "../shared");
    return stat(shared_dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whole file as text, one trailing newline dropped; NULL when missing. */
static char *slurp(const char *dir, const char *name)
{
    char path[1400];
    spim_buf b = SPIM_BUF_INIT;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (spim_read_file(path, 0, &b, NULL) != SPIM_OK) {
        spim_buf_free(&b);
        return NULL;
    }
    if (b.len && b.data[b.len - 1] == '\n') b.data[--b.len] = 0;
    if (!b.data) return (char *)calloc(1, 1);
    b.data[b.len] = 0;
    return (char *)b.data;
}

/* A raw HTTP request as the suites write it: request line, headers (a
   continuation line starts with white space), blank line, body. Parsed in
   place: the strings point into `text`. */
typedef struct raw_req {
    char *text, method[16], url[2048];
    spim_header headers[32];
    size_t header_count;
    const char *body;
    size_t body_len;
} raw_req;

static int parse_raw_req(raw_req *rq, int encode_path)
{
    char *p = rq->text, *eol = strchr(p, '\n'), *sp, *http, *host = NULL;
    size_t i;
    if (!eol) eol = p + strlen(p);
    *eol = 0;
    sp = strchr(p, ' ');
    http = strstr(p, " HTTP/");
    if (!sp || !http || http < sp) return 0;
    snprintf(rq->method, sizeof rq->method, "%.*s", (int)(sp - p), p);
    *http = 0;
    p = eol[1] || eol[0] ? eol + 1 : eol;
    rq->header_count = 0;
    while (*p && *p != '\n' && rq->header_count < 32) {
        char *colon = strchr(p, ':'), *end;
        if (!colon) return 0;
        *colon = 0;
        end = colon + 1;
        while ((end = strchr(end, '\n')) != NULL && (end[1] == ' ' || end[1] == '\t')) end++;
        rq->headers[rq->header_count].name = p;
        rq->headers[rq->header_count++].value = colon + 1;
        if (!end) { p = colon + 1 + strlen(colon + 1); break; }
        *end = 0;
        p = end + 1;
    }
    rq->body = *p == '\n' ? p + 1 : "";
    rq->body_len = strlen(rq->body);
    for (i = 0; i < rq->header_count; i++)
        if (!strcmp(rq->headers[i].name, "Host")) host = (char *)rq->headers[i].value;
    if (!host) return 0;
    if (encode_path) {
        /* S3 style: the path goes on the wire encoded once, '/' kept */
        spim_buf enc = SPIM_BUF_INIT;
        char *path = sp + 1, *q = strchr(path, '?');
        spim_uri_encode(&enc, path, q ? (size_t)(q - path) : strlen(path), 1);
        snprintf(rq->url, sizeof rq->url, "https://%s%s%s", host, (const char *)enc.data, q ? q : "");
        spim_buf_free(&enc);
    } else {
        snprintf(rq->url, sizeof rq->url, "https://%s%s", host, sp + 1);
    }
    return 1;
}

static int load_raw_req(raw_req *rq, const char *dir, const char *file, int encode_path)
{
    memset(rq, 0, sizeof *rq);
    rq->text = slurp(dir, file);
    return rq->text && parse_raw_req(rq, encode_path);
}

static spim_sigv4_request raw_request(const raw_req *rq)
{
    spim_sigv4_request r = request(rq->method, rq->url, rq->headers, rq->header_count);
    r.body = rq->body;
    r.body_len = rq->body_len;
    return r;
}

static void check_file(const char *dir, const char *file, const char *got)
{
    char *want = slurp(dir, file);
    CHECKF(want != NULL, "missing %s/%s", dir, file);
    if (want) CHECK_STR(want, got);
    free(want);
}

/* aws4_testsuite: classic layout, generic SigV4. The suite has no context
   file: a session token that the signed request (.sreq) carries but the
   request (.req) does not is the credentials' token, and per the suite's
   post-sts-token/readme.txt, post-sts-header-after adds it unsigned. */
static const char *const aws4_cases[] = {
    "get-header-key-duplicate", "get-header-value-multiline", "get-header-value-order", "get-header-value-trim",
    "get-unreserved", "get-utf8", "get-vanilla", "get-vanilla-empty-query-key", "get-vanilla-query",
    "get-vanilla-query-order-encoded", "get-vanilla-query-order-key", "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-value", "get-vanilla-query-unreserved", "get-vanilla-utf8-query",
    "get-vanilla-with-session-token", "normalize-path/get-relative", "normalize-path/get-relative-relative",
    "normalize-path/get-slash", "normalize-path/get-slash-dot-slash", "normalize-path/get-slash-pointless-dot",
    "normalize-path/get-slashes", "normalize-path/get-space", "normalize-path/get-special-character",
    "post-header-key-case", "post-header-key-sort", "post-header-value-case",
    "post-sts-token/post-sts-header-after", "post-sts-token/post-sts-header-before", "post-vanilla",
    "post-vanilla-empty-query-value", "post-vanilla-query", "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters"
};
#define AWS4_CASES (sizeof aws4_cases / sizeof aws4_cases[0])

static const char *current_case;

static void run_aws4_case(void)
{
    char dir[1400], file[256];
    const char *base = strrchr(current_case, '/') ? strrchr(current_case, '/') + 1 : current_case;
    spim_credentials c = creds(SUITE_AK, SUITE_SK, NULL);
    spim_sigv4_params p = s3_params(&c, SUITE_TIME);
    spim_sigv4_request r;
    spim_sigv4_result res;
    spim_error e;
    raw_req rq;
    char *sreq, *token;
    if (!have_shared()) SKIP("no ../shared (set SPIM_SHARED): AWS SigV4 suite not available");
    p.mode = SPIM_SIGV4_GENERIC;
    p.service = "service";
    snprintf(dir, sizeof dir, "%s/sigv4/aws4_testsuite/%s", shared_dir, current_case);
    snprintf(file, sizeof file, "%s.req", base);
    if (!load_raw_req(&rq, dir, file, 0)) {
        free(rq.text);
        CHECKF(0, "cannot read or parse %s/%s", dir, file);
        return;
    }
    r = raw_request(&rq);
    snprintf(file, sizeof file, "%s.sreq", base);
    sreq = slurp(dir, file);
    token = sreq ? strstr(sreq, "\nX-Amz-Security-Token:") : NULL;
    if (token && spim__find_header(&r, "x-amz-security-token") < 0) {
        token += strlen("\nX-Amz-Security-Token:");
        c = creds(SUITE_AK, SUITE_SK, NULL);
        snprintf(c.session_token, sizeof c.session_token, "%.*s", (int)strcspn(token, "\r\n"), token);
        if (strstr(current_case, "post-sts-header-after")) p.flags |= SPIM_SIGV4_OMIT_SESSION_TOKEN;
    }
    spim__error_clear(&e);
    CHECKF(spim_sigv4_sign(&r, &p, &res, &e) == SPIM_OK, "%s", e.message);
    if (c.session_token[0]) CHECK_STR(c.session_token, find_added(&res, "X-Amz-Security-Token"));
    free(sreq);
    snprintf(file, sizeof file, "%s.creq", base);
    check_file(dir, file, (const char *)res.canonical_request.data);
    snprintf(file, sizeof file, "%s.sts", base);
    check_file(dir, file, (const char *)res.string_to_sign.data);
    snprintf(file, sizeof file, "%s.authz", base);
    check_file(dir, file, (const char *)res.authorization.data);
    spim_sigv4_result_free(&res);
    free(rq.text);
}

/* signing-test-suite-v4: context.json carries the switches. */
static const char *const v4_cases[] = {
    "get-header-key-duplicate", "get-header-value-multiline", "get-header-value-order", "get-header-value-trim",
    "get-relative-normalized", "get-relative-relative-normalized", "get-relative-relative-unnormalized",
    "get-relative-unnormalized", "get-slash-dot-slash-normalized", "get-slash-dot-slash-unnormalized",
    "get-slash-normalized", "get-slash-pointless-dot-normalized", "get-slash-pointless-dot-unnormalized",
    "get-slash-unnormalized", "get-slashes-normalized", "get-slashes-unnormalized", "get-space-normalized",
    "get-space-unnormalized", "get-unreserved", "get-utf8", "get-vanilla", "get-vanilla-empty-query-key",
    "get-vanilla-query", "get-vanilla-query-order-encoded", "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved", "get-vanilla-utf8-query", "get-vanilla-with-session-token",
    "post-header-key-case", "post-header-key-sort", "post-header-value-case", "post-sts-header-after",
    "post-sts-header-before", "post-vanilla", "post-vanilla-empty-query-value", "post-vanilla-query",
    "post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters"
};
#define V4_CASES (sizeof v4_cases / sizeof v4_cases[0])

static int current_query; /* 0: header variant, 1: query (presigned) variant */

static int json_true(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static const char *json_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "2015-08-30T12:36:00Z" -> seconds since 1970 */
static int64_t parse_iso_time(const char *s)
{
    int y, mo, d, h, mi, se;
    int64_t days;
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se) != 6) return -1;
    y -= mo <= 2;
    days = (int64_t)(y / 400) * 146097 + (y % 400) * 365 + (y % 400) / 4 - (y % 400) / 100 +
           (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1 - 719468;
    return days * 86400 + h * 3600 + mi * 60 + se;
}

static void check_v4_results(const char *dir, const spim_sigv4_result *res, const char *prefix)
{
    char file[64];
    snprintf(file, sizeof file, "%s-canonical-request.txt", prefix);
    check_file(dir, file, (const char *)res->canonical_request.data);
    snprintf(file, sizeof file, "%s-string-to-sign.txt", prefix);
    check_file(dir, file, (const char *)res->string_to_sign.data);
    snprintf(file, sizeof file, "%s-signature.txt", prefix);
    check_file(dir, file, res->signature);
}

/* The unnormalized cases are S3's path rule: the same path, encoded once
   and signed in S3 mode verbatim, gives the same canonical URI. */
static void check_v4_unnormalized_as_s3(const char *dir, const spim_sigv4_params *generic)
{
    spim_sigv4_params p = *generic;
    spim_sigv4_request r;
    spim_sigv4_result res;
    char *want = slurp(dir, "header-canonical-request.txt"), a[256], b[256];
    raw_req rq;
    REQUIRE(want && load_raw_req(&rq, dir, "request.txt", 1));
    p.mode = SPIM_SIGV4_S3;
    p.flags = 0;
    r = raw_request(&rq);
    REQUIRE(spim_sigv4_sign(&r, &p, &res, NULL) == SPIM_OK);
    CHECK_STR(line_of(want, 1, a, sizeof a), line_of((const char *)res.canonical_request.data, 1, b, sizeof b));
    spim_sigv4_result_free(&res);
    free(rq.text);
    free(want);
}

static void run_v4_case(void)
{
    char dir[1400];
    char *ctx_text;
    cJSON *ctx, *cr;
    spim_credentials c;
    spim_sigv4_params p;
    spim_sigv4_request r;
    spim_sigv4_result res;
    spim_buf url = SPIM_BUF_INIT;
    spim_error e;
    raw_req rq;
    if (!have_shared()) SKIP("no ../shared (set SPIM_SHARED): AWS signing test suite v4 not available");
    snprintf(dir, sizeof dir, "%s/sigv4/signing-test-suite-v4/%s", shared_dir, current_case);
    ctx_text = slurp(dir, "context.json");
    ctx = ctx_text ? cJSON_Parse(ctx_text) : NULL;
    free(ctx_text);
    REQUIRE(ctx != NULL);
    cr = cJSON_GetObjectItemCaseSensitive(ctx, "credentials");
    c = creds(json_str(cr, "access_key_id"), json_str(cr, "secret_access_key"), json_str(cr, "token"));
    p = s3_params(&c, parse_iso_time(json_str(ctx, "timestamp")));
    p.mode = SPIM_SIGV4_GENERIC;
    p.region = "us-east-1";
    CHECK_STR("us-east-1", json_str(ctx, "region"));
    CHECK_STR("service", json_str(ctx, "service"));
    p.service = "service";
    p.expires = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ctx, "expiration_in_seconds"));
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(ctx, "normalize"))) p.flags |= SPIM_SIGV4_NO_NORMALIZE;
    if (json_true(ctx, "sign_body") && !current_query) p.flags |= SPIM_SIGV4_SIGN_CONTENT_SHA256;
    if (json_true(ctx, "omit_session_token")) p.flags |= SPIM_SIGV4_OMIT_SESSION_TOKEN;
    if (!load_raw_req(&rq, dir, "request.txt", 0)) {
        free(rq.text);
        cJSON_Delete(ctx);
        CHECKF(0, "cannot read or parse %s/request.txt", dir);
        return;
    }
    r = raw_request(&rq);
    spim__error_clear(&e);
    if (current_query) CHECKF(spim_sigv4_presign(&r, &p, &url, &res, &e) == SPIM_OK, "%s", e.message);
    else CHECKF(spim_sigv4_sign(&r, &p, &res, &e) == SPIM_OK, "%s", e.message);
    check_v4_results(dir, &res, current_query ? "query" : "header");
    if (!current_query && (p.flags & SPIM_SIGV4_NO_NORMALIZE)) check_v4_unnormalized_as_s3(dir, &p);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
    free(rq.text);
    cJSON_Delete(ctx);
}

/* Every case directory on disk is one the lists above run. */
static void count_dirs(const char *path, const char *need_file_suffix, int depth, int *n)
{
    DIR *d = opendir(path);
    struct dirent *de;
    if (!d) return;
    while ((de = readdir(d)) != NULL) {
        char sub[2048];
        struct stat st;
        size_t l = strlen(de->d_name), sl = strlen(need_file_suffix);
        if (de->d_name[0] == '.') continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        if (stat(sub, &st) != 0) continue;
        if (S_ISDIR(st.st_mode) && depth < 3) count_dirs(sub, need_file_suffix, depth + 1, n);
        else if (S_ISREG(st.st_mode) && l >= sl && strcmp(de->d_name + l - sl, need_file_suffix) == 0) (*n)++;
    }
    closedir(d);
}

TEST(suites_on_disk_have_exactly_the_listed_cases)
{
    char path[1400];
    int n = 0;
    if (!have_shared()) SKIP("no ../shared (set SPIM_SHARED)");
    snprintf(path, sizeof path, "%s/sigv4/aws4_testsuite", shared_dir);
    count_dirs(path, ".req", 0, &n);
    CHECK_INT(AWS4_CASES, n);
    n = 0;
    snprintf(path, sizeof path, "%s/sigv4/signing-test-suite-v4", shared_dir);
    count_dirs(path, "context.json", 0, &n);
    CHECK_INT(V4_CASES, n);
}

/* ---- botocore-computed S3 edge cases of s3-vectors.json ------------------- */

static const cJSON *current_vector;

static void run_s3_vector(void)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(current_vector, "inputs"), *h;
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(in, "expires");
    spim_credentials c = creds(json_str(in, "access_key"), json_str(in, "secret_key"), json_str(in, "session_token"));
    spim_sigv4_params p = s3_params(&c, parse_iso_time(json_str(in, "time")));
    spim_sigv4_request r = request(json_str(in, "method"), json_str(in, "url"), NULL, 0);
    spim_header hs[16];
    char names[16][128];
    spim_sigv4_result res;
    spim_buf url = SPIM_BUF_INIT;
    spim_error e;
    size_t n = 0;
    p.region = json_str(in, "region");
    p.service = json_str(in, "service");
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(in, "headers")) {
        const char *line = cJSON_GetStringValue(h), *colon = line ? strchr(line, ':') : NULL;
        REQUIRE(colon && n < 16);
        snprintf(names[n], sizeof names[n], "%.*s", (int)(colon - line), line);
        hs[n].name = names[n];
        hs[n++].value = colon + 1;
    }
    r.headers = hs;
    r.header_count = n;
    if (json_str(in, "body")) {
        r.body = json_str(in, "body");
        r.body_len = strlen(json_str(in, "body"));
    }
    if (json_true(in, "unsigned_payload")) r.payload_hash = SPIM_UNSIGNED_PAYLOAD;
    spim__error_clear(&e);
    if (cJSON_IsNumber(expires)) {
        p.expires = (long)expires->valuedouble;
        CHECKF(spim_sigv4_presign(&r, &p, &url, &res, &e) == SPIM_OK, "%s", e.message);
        CHECK_STR(json_str(current_vector, "presigned_url"), (const char *)url.data);
    } else {
        CHECKF(spim_sigv4_sign(&r, &p, &res, &e) == SPIM_OK, "%s", e.message);
    }
    CHECK_STR(json_str(current_vector, "canonical_request"), (const char *)res.canonical_request.data);
    CHECK_STR(json_str(current_vector, "string_to_sign"), (const char *)res.string_to_sign.data);
    CHECK_STR(json_str(current_vector, "signature"), res.signature);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
}

static void skip_s3_vectors(void)
{
    SKIP("no ../shared/sigv4/s3-vectors.json (set SPIM_SHARED): botocore edge cases not available");
}

static void run_s3_vectors(void)
{
    char dir[1400], name[256];
    char *text;
    cJSON *all, *v;
    int n = 0;
    if (!have_shared()) {
        spim_t_run("s3_vectors_botocore_edge_cases", skip_s3_vectors);
        return;
    }
    snprintf(dir, sizeof dir, "%s/sigv4", shared_dir);
    text = slurp(dir, "s3-vectors.json");
    all = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON_ArrayForEach(v, all) {
        const char *source = json_str(v, "source");
        if (!source || strncmp(source, "botocore", 8) != 0) continue; /* the docs' five are built in above */
        current_vector = v;
        snprintf(name, sizeof name, "s3_vector: %s", json_str(v, "name"));
        spim_t_run(name, run_s3_vector);
        n++;
    }
    if (n == 0) {
        spim_t_failed++;
        printf("FAIL s3_vectors: no botocore cases found in %s/s3-vectors.json\n", dir);
    }
    cJSON_Delete(all);
}

int main(void)
{
    size_t i;
    char name[256];
    RUN(s3_doc_get_object_with_range);
    RUN(s3_doc_put_object_dollar_key);
    RUN(s3_doc_get_bucket_lifecycle);
    RUN(s3_doc_list_objects);
    RUN(s3_doc_presigned_get_86400s);
    RUN(presign_rejects_expires_outside_1_to_604800);
    RUN(presign_puts_signature_last_and_signs_the_session_token);
    RUN(header_signing_adds_and_signs_the_session_token);
    RUN(omit_session_token_adds_it_unsigned);
    RUN(ignored_headers_are_not_signed);
    RUN(s3_mode_keeps_dot_segments_and_double_slashes_verbatim);
    RUN(generic_mode_normalises_and_encodes_again);
    RUN(canonical_query_decodes_reencodes_and_sorts);
    RUN(canonical_headers_trim_fold_and_join_duplicates);
    RUN(host_drops_default_ports_userinfo_and_case);
    RUN(payload_hash_choices);
    RUN(bad_input_is_rejected_with_a_reason);
    RUN(uri_encode_and_amz_date);
    RUN(signing_key_matches_the_aws_example);
    RUN(suites_on_disk_have_exactly_the_listed_cases);
    for (i = 0; i < AWS4_CASES; i++) {
        current_case = aws4_cases[i];
        snprintf(name, sizeof name, "aws4_testsuite/%s", aws4_cases[i]);
        spim_t_run(name, run_aws4_case);
    }
    for (i = 0; i < 2 * V4_CASES; i++) {
        current_case = v4_cases[i / 2];
        current_query = (int)(i % 2);
        snprintf(name, sizeof name, "signing-test-suite-v4/%s/%s", v4_cases[i / 2], current_query ? "query" : "header");
        spim_t_run(name, run_v4_case);
    }
    run_s3_vectors();
    return spim_test_finish();
}
