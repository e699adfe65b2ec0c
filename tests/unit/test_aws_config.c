/* test_aws_config.c - AWS credentials, region, endpoint and CA lookup (core/aws_config.c).
 *
 * Every case runs against a scratch HOME holding .aws/credentials and .aws/config as the
 * case writes them, and a fake environment, so nothing depends on the machine's own
 * settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tmpdir.h"

#include "../../core/s3/aws_config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a fake environment and a scratch HOME ---------------------------------------------- */

struct fenv {
    int n;
    const char *kv[32][2];
    char store[32][1200];
};

static const char *fget(const char *name, void *ctx)
{
    struct fenv *e = ctx;
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->kv[i][0], name) == 0) return e->kv[i][1];
    return NULL;
}

/* Set (or with v == NULL remove) a variable; the value is copied. */
static void fset(struct fenv *e, const char *k, const char *v)
{
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->kv[i][0], k) != 0) continue;
        if (!v) {
            e->kv[i][0] = "";
            return;
        }
        snprintf(e->store[i], sizeof e->store[i], "%s", v);
        e->kv[i][1] = e->store[i];
        return;
    }
    if (!v) return;
    assert_true(e->n < 32);
    snprintf(e->store[e->n], sizeof e->store[0], "%s", v);
    e->kv[e->n][0] = k;
    e->kv[e->n][1] = e->store[e->n];
    e->n++;
}

struct fx {
    char dir[512];
    char cred[640], conf[640]; /* DIR/.aws/credentials, DIR/.aws/config */
    struct fenv env;
    struct aws_settings a;
    char err[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || tmpdir_make(f->dir, sizeof f->dir) < 0) return -1;
    char aws[600];
    snprintf(aws, sizeof aws, "%s/.aws", f->dir);
    if (mkdir(aws, 0700) < 0) return -1;
    snprintf(f->cred, sizeof f->cred, "%s/credentials", aws);
    snprintf(f->conf, sizeof f->conf, "%s/config", aws);
    fset(&f->env, "HOME", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aws_settings_free(&f->a);
    int r = tmpdir_remove(f->dir);
    free(f);
    return r;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* Load into f->a (freeing the previous result); returns what aws_settings_load did. */
static int load(struct fx *f)
{
    aws_settings_free(&f->a);
    memset(f->err, 'x', sizeof f->err - 1);
    f->err[sizeof f->err - 1] = '\0';
    int r = aws_settings_load(&f->a, fget, &f->env, f->err, sizeof f->err);
    if (r == 0) assert_string_equal(f->err, "");
    return r;
}

static void load_ok(struct fx *f)
{
    int r = load(f);
    if (r != 0) fail_msg("aws_settings_load = %d: %s", r, f->err);
}

/* The load fails with code and every fragment (NULL-terminated) appears in the error. */
static void load_fails(struct fx *f, int code, ...)
{
    int r = load(f);
    if (r != code) fail_msg("aws_settings_load = %d (%s), want %d", r, f->err, code);
    assert_null(strchr(f->err, '\n'));
    va_list ap;
    va_start(ap, code);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(f->err, frag)) fail_msg("error \"%s\" does not mention \"%s\"", f->err, frag);
    va_end(ap);
    /* a failed load leaves nothing behind */
    assert_int_equal(f->a.have_creds, 0);
    assert_null(f->a.session_token);
    assert_string_equal(f->a.access_key, "");
}

static void expect_defaults(const struct aws_settings *a)
{
    assert_int_equal(a->have_creds, 0);
    assert_string_equal(a->access_key, "");
    assert_string_equal(a->secret_key, "");
    assert_null(a->session_token);
    assert_string_equal(a->region, "us-east-1");
    assert_string_equal(a->endpoint, "");
    assert_string_equal(a->ca_bundle, "");
    assert_string_equal(a->profile, "default");
    assert_int_equal(a->anonymous, 0);
    assert_string_equal(a->creds_source, "none");
}

/* ---- no configuration at all ------------------------------------------------------------ */

static void test_nothing_configured(void **state)
{
    struct fx *f = *state;
    load_ok(f); /* .aws exists but is empty */
    expect_defaults(&f->a);
    fset(&f->env, "HOME", NULL);
    load_ok(f);
    expect_defaults(&f->a);
    char nowhere[700];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/home", f->dir);
    fset(&f->env, "HOME", nowhere);
    load_ok(f);
    expect_defaults(&f->a);
}

static void test_never_reads_working_directory(void **state)
{
    struct fx *f = *state;
    char rel[700], cwd[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/rel", f->dir);
    assert_int_equal(mkdir(rel, 0700), 0);
    snprintf(rel, sizeof rel, "%s/rel/.aws", f->dir);
    assert_int_equal(mkdir(rel, 0700), 0);
    snprintf(rel, sizeof rel, "%s/rel/.aws/credentials", f->dir);
    write_file(rel, "[default]\naws_access_key_id = CWD\naws_secret_access_key = CWD\n");
    snprintf(rel, sizeof rel, "%s/creds", f->dir);
    write_file(rel, "[default]\naws_access_key_id = CWD\naws_secret_access_key = CWD\n");
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);

    fset(&f->env, "HOME", "rel"); /* a relative HOME is no HOME */
    load_ok(f);
    expect_defaults(&f->a);

    fset(&f->env, "HOME", f->dir);
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", "creds");
    load_fails(f, -EINVAL, "AWS_SHARED_CREDENTIALS_FILE", "'creds'", "relative", NULL);
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", "./creds");
    load_fails(f, -EINVAL, "AWS_SHARED_CREDENTIALS_FILE", NULL);
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", NULL);
    fset(&f->env, "AWS_CONFIG_FILE", "rel/.aws/credentials");
    load_fails(f, -EINVAL, "AWS_CONFIG_FILE", "relative", NULL);
    fset(&f->env, "AWS_CONFIG_FILE", NULL);
    fset(&f->env, "AWS_CA_BUNDLE", "ca.pem");
    load_fails(f, -EINVAL, "AWS_CA_BUNDLE", "relative", NULL);
    assert_int_equal(chdir(cwd), 0);
}

/* ---- the environment -------------------------------------------------------------------- */

static void test_env_credentials_win(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n"
                        "aws_session_token = FILETOKEN\n");
    fset(&f->env, "AWS_ACCESS_KEY_ID", "ENVKEY");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "ENV/SECRET+x=");
    load_ok(f);
    assert_int_equal(f->a.have_creds, 1);
    assert_string_equal(f->a.access_key, "ENVKEY");
    assert_string_equal(f->a.secret_key, "ENV/SECRET+x=");
    assert_null(f->a.session_token); /* never mixed with the file's */
    assert_string_equal(f->a.creds_source, "environment");

    fset(&f->env, "AWS_SESSION_TOKEN", "ENVTOKEN");
    load_ok(f);
    assert_string_equal(f->a.session_token, "ENVTOKEN");

    fset(&f->env, "AWS_SESSION_TOKEN", NULL);
    fset(&f->env, "AWS_SECURITY_TOKEN", "LEGACY"); /* the old name still works */
    load_ok(f);
    assert_string_equal(f->a.session_token, "LEGACY");
    fset(&f->env, "AWS_SESSION_TOKEN", "NEW");
    load_ok(f);
    assert_string_equal(f->a.session_token, "NEW");
}

static void test_env_half_a_key_pair(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n");
    fset(&f->env, "AWS_ACCESS_KEY_ID", "ENVKEY");
    load_fails(f, -EINVAL, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", NULL);
    fset(&f->env, "AWS_ACCESS_KEY_ID", NULL);
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "S");
    load_fails(f, -EINVAL, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not", NULL);
    /* empty counts as unset */
    fset(&f->env, "AWS_ACCESS_KEY_ID", "");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "");
    load_ok(f);
    assert_string_equal(f->a.access_key, "FILEKEY");
}

static void test_env_values_too_long(void **state)
{
    struct fx *f = *state;
    char big[400];
    memset(big, 'K', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    fset(&f->env, "AWS_ACCESS_KEY_ID", big);
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "s");
    load_fails(f, -EINVAL, "AWS_ACCESS_KEY_ID is too long", NULL);
    fset(&f->env, "AWS_ACCESS_KEY_ID", "k");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", big);
    load_fails(f, -EINVAL, "AWS_SECRET_ACCESS_KEY is too long", NULL);
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "s");
    fset(&f->env, "AWS_PROFILE", big);
    load_fails(f, -EINVAL, "AWS_PROFILE", "too long", NULL);
    fset(&f->env, "AWS_PROFILE", NULL);
    big[255] = '\0'; /* exactly fits */
    fset(&f->env, "AWS_ACCESS_KEY_ID", big);
    load_ok(f);
    assert_int_equal(strlen(f->a.access_key), 255);
}

/* ---- the shared credentials file -------------------------------------------------------- */

static void test_default_profile_from_credentials(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "# my keys\n"
                        "; another comment\n"
                        "\n"
                        "[other]\n"
                        "aws_access_key_id = OTHER\n"
                        "aws_secret_access_key = OTHER\n"
                        "[default]\n"
                        "aws_access_key_id = AKIDEFAULT\n"
                        "aws_secret_access_key = wJalr/K7MDENG+bPxRfi=CYEXAMPLEKEY\n"
                        "aws_session_token = IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==\n");
    load_ok(f);
    assert_int_equal(f->a.have_creds, 1);
    assert_string_equal(f->a.access_key, "AKIDEFAULT");
    assert_string_equal(f->a.secret_key, "wJalr/K7MDENG+bPxRfi=CYEXAMPLEKEY");
    assert_string_equal(f->a.session_token, "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==");
    char want[800];
    snprintf(want, sizeof want, "profile 'default' in %s", f->cred);
    assert_string_equal(f->a.creds_source, want);
    assert_string_equal(f->a.profile, "default");
    assert_string_equal(f->a.region, "us-east-1");
}

static void test_named_profile(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[default]\naws_access_key_id = D\naws_secret_access_key = D\n"
                        "[dev]\naws_access_key_id = DEV\naws_secret_access_key = DEVS\n"
                        "[dev2]\naws_access_key_id = DEV2\naws_secret_access_key = DEV2S\n");
    fset(&f->env, "AWS_PROFILE", "dev");
    load_ok(f);
    assert_string_equal(f->a.profile, "dev");
    assert_string_equal(f->a.access_key, "DEV");
    assert_string_equal(f->a.secret_key, "DEVS");
    assert_non_null(strstr(f->a.creds_source, "profile 'dev' in "));
    fset(&f->env, "AWS_PROFILE", NULL);
    fset(&f->env, "AWS_DEFAULT_PROFILE", "dev2"); /* the old name */
    load_ok(f);
    assert_string_equal(f->a.access_key, "DEV2");
    fset(&f->env, "AWS_PROFILE", "dev");
    load_ok(f);
    assert_string_equal(f->a.access_key, "DEV");
}

static void test_named_profile_missing(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[default]\naws_access_key_id = D\naws_secret_access_key = D\n");
    write_file(f->conf, "[profile prod]\nregion = eu-west-1\n[nope-not]\n");
    fset(&f->env, "AWS_PROFILE", "nope");
    load_fails(f, -EINVAL, "AWS_PROFILE", "'nope'", f->cred, f->conf, NULL);
    /* env keys do not excuse a missing named profile (the AWS CLI refuses too) */
    fset(&f->env, "AWS_ACCESS_KEY_ID", "K");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "S");
    load_fails(f, -EINVAL, "'nope'", NULL);
    /* with no files at all */
    unlink(f->cred);
    unlink(f->conf);
    load_fails(f, -EINVAL, "'nope'", NULL);
    /* a missing default profile is fine */
    fset(&f->env, "AWS_PROFILE", NULL);
    load_ok(f);
    assert_string_equal(f->a.creds_source, "environment");
}

static void test_partial_profile_keys(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[default]\naws_access_key_id = ONLYKEY\n");
    load_fails(f, -EINVAL, f->cred, "profile 'default'", "no aws_secret_access_key", NULL);
    write_file(f->cred, "[default]\naws_secret_access_key = ONLYSECRET\n");
    load_fails(f, -EINVAL, f->cred, "no aws_access_key_id", NULL);
    /* not reached when the environment has the keys */
    fset(&f->env, "AWS_ACCESS_KEY_ID", "K");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "S");
    load_ok(f);
    assert_string_equal(f->a.access_key, "K");
}

static void test_explicit_credentials_file(void **state)
{
    struct fx *f = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/elsewhere.ini", f->dir);
    write_file(path, "[default]\naws_access_key_id = ELSE\naws_secret_access_key = ELSES\n");
    write_file(f->cred, "[default]\naws_access_key_id = HOME\naws_secret_access_key = HOMES\n");
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", path);
    load_ok(f);
    assert_string_equal(f->a.access_key, "ELSE");
    char want[800];
    snprintf(want, sizeof want, "profile 'default' in %s", path);
    assert_string_equal(f->a.creds_source, want);
    /* ~/ is HOME */
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere.ini");
    load_ok(f);
    assert_string_equal(f->a.access_key, "ELSE");
    assert_string_equal(f->a.creds_source, want);
    fset(&f->env, "HOME", NULL);
    load_fails(f, -EINVAL, "AWS_SHARED_CREDENTIALS_FILE", "HOME", NULL);
    fset(&f->env, "HOME", f->dir);
    /* a file named explicitly must exist */
    snprintf(path, sizeof path, "%s/missing.ini", f->dir);
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", path);
    load_fails(f, -EINVAL, "AWS_SHARED_CREDENTIALS_FILE", path, NULL);
    /* ... and be a regular file */
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", f->dir);
    load_fails(f, -EINVAL, f->dir, "not a regular file", NULL);
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", "/dev/zero");
    load_fails(f, -EINVAL, "/dev/zero", "not a regular file", NULL);
    /* /dev/null is the usual "no file": empty, no credentials, no error */
    fset(&f->env, "AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    load_ok(f);
    assert_false(f->a.have_creds);
}

static void test_unreadable_file(void **state)
{
    struct fx *f = *state;
    /* a default file that exists but cannot be opened is an error (not "no file") */
    assert_int_equal(symlink("credentials", f->cred), 0); /* a loop: ELOOP, even for root */
    load_fails(f, -ELOOP, "cannot read", f->cred, NULL);
    unlink(f->cred);
    if (geteuid() == 0) return; /* root reads anything */
    write_file(f->cred, "[default]\naws_access_key_id = A\naws_secret_access_key = B\n");
    assert_int_equal(chmod(f->cred, 0), 0);
    load_fails(f, -EACCES, f->cred, NULL);
}

static void test_file_too_big(void **state)
{
    struct fx *f = *state;
    FILE *fp = fopen(f->cred, "w");
    assert_non_null(fp);
    for (int i = 0; i < 50000; i++) fprintf(fp, "# padding padding padding\n");
    fclose(fp);
    load_fails(f, -EFBIG, f->cred, NULL);
}

/* ---- the config file -------------------------------------------------------------------- */

static void test_config_profile_sections(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[default]\nregion = eu-west-1\n"
                        "[profile dev]\nregion = ap-south-1\naws_access_key_id = CFGDEV\n"
                        "aws_secret_access_key = CFGDEVS\naws_session_token = CFGTOK\n"
                        "[prod]\nregion = sa-east-1\n");
    load_ok(f);
    assert_string_equal(f->a.region, "eu-west-1");
    assert_int_equal(f->a.have_creds, 0);
    fset(&f->env, "AWS_PROFILE", "dev");
    load_ok(f);
    assert_string_equal(f->a.region, "ap-south-1");
    assert_int_equal(f->a.have_creds, 1);
    assert_string_equal(f->a.access_key, "CFGDEV");
    assert_string_equal(f->a.session_token, "CFGTOK");
    char want[800];
    snprintf(want, sizeof want, "profile 'dev' in %s", f->conf);
    assert_string_equal(f->a.creds_source, want);
    /* in the config file a profile is "[profile NAME]": "[prod]" is not one */
    fset(&f->env, "AWS_PROFILE", "prod");
    load_fails(f, -EINVAL, "'prod'", NULL);
}

static void test_config_profile_default_form(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[profile   default]\nregion = us-west-2\n");
    load_ok(f);
    assert_string_equal(f->a.region, "us-west-2");
    fset(&f->env, "AWS_PROFILE", "default");
    load_ok(f);
    assert_string_equal(f->a.region, "us-west-2");
}

static void test_credentials_file_beats_config(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[dev]\naws_access_key_id = CRED\naws_secret_access_key = CREDS\n");
    write_file(f->conf, "[profile dev]\naws_access_key_id = CONF\naws_secret_access_key = CONFS\n"
                        "aws_session_token = CONFTOK\nregion = eu-north-1\n");
    fset(&f->env, "AWS_PROFILE", "dev");
    load_ok(f);
    assert_string_equal(f->a.access_key, "CRED");
    assert_string_equal(f->a.secret_key, "CREDS");
    assert_null(f->a.session_token); /* the pair and its token come from one file */
    assert_string_equal(f->a.region, "eu-north-1");
    assert_non_null(strstr(f->a.creds_source, f->cred));
    /* a region in the credentials file counts too (botocore merges the files) and wins */
    write_file(f->cred, "[dev]\naws_access_key_id = CRED\naws_secret_access_key = CREDS\nregion = af-south-1\n");
    load_ok(f);
    assert_string_equal(f->a.region, "af-south-1");
}

static void test_region_precedence(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[default]\nregion = eu-west-1\n");
    load_ok(f);
    assert_string_equal(f->a.region, "eu-west-1");
    fset(&f->env, "AWS_DEFAULT_REGION", "eu-west-2");
    load_ok(f);
    assert_string_equal(f->a.region, "eu-west-2");
    fset(&f->env, "AWS_REGION", "eu-west-3");
    load_ok(f);
    assert_string_equal(f->a.region, "eu-west-3");
    fset(&f->env, "AWS_REGION", "");
    load_ok(f);
    assert_string_equal(f->a.region, "eu-west-2");
}

static void test_region_checked(void **state)
{
    struct fx *f = *state;
    fset(&f->env, "AWS_REGION", "us east");
    load_fails(f, -EINVAL, "AWS_REGION", "'us east'", NULL);
    fset(&f->env, "AWS_REGION", NULL);
    write_file(f->conf, "[default]\n\nregion = us-east-1   # N. Virginia\n");
    char where[700];
    snprintf(where, sizeof where, "%s:3:", f->conf);
    load_fails(f, -EINVAL, where, "region", NULL);
    char big[100];
    memset(big, 'r', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    fset(&f->env, "AWS_DEFAULT_REGION", big);
    load_fails(f, -EINVAL, "AWS_DEFAULT_REGION", NULL);
    fset(&f->env, "AWS_DEFAULT_REGION", NULL);
    write_file(f->conf, "[default]\nregion = garage_local.1\n"); /* S3-compatible servers' names */
    load_ok(f);
    assert_string_equal(f->a.region, "garage_local.1");
}

/* ---- endpoints -------------------------------------------------------------------------- */

static void test_endpoint_precedence(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[services local]\n"
                        "s3 =\n"
                        "  endpoint_url = http://services-s3:9000\n"
                        "  addressing_style = path\n"
                        "[default]\n"
                        "endpoint_url = http://global:9000\n"
                        "s3 =\n"
                        "    endpoint_url = http://nested-s3:9000\n"
                        "    signature_version = s3v4\n"
                        "region = eu-west-1\n"
                        "services = local\n");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "http://services-s3:9000");
    assert_string_equal(f->a.region, "eu-west-1"); /* the nested block ended at "region" */
    write_file(f->conf, "[default]\nendpoint_url = http://global:9000\ns3 =\n endpoint_url = http://nested-s3:9000\n");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "http://nested-s3:9000");
    write_file(f->conf, "[default]\nendpoint_url = http://global:9000\n");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "http://global:9000");
    fset(&f->env, "AWS_ENDPOINT_URL", "https://env-global");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "https://env-global");
    fset(&f->env, "AWS_ENDPOINT_URL_S3", "https://env-s3:8443");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "https://env-s3:8443");
}

static void test_endpoint_other_services_ignored(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[profile p]\nservices = mine\n"
                        "[services theirs]\ns3 =\n  endpoint_url = http://theirs\n"
                        "[services mine]\ndynamodb =\n  endpoint_url = http://dynamo\n"
                        "[default]\ns3 =\n  endpoint_url = http://default-profile\n");
    fset(&f->env, "AWS_PROFILE", "p");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "");
}

static void test_endpoint_list_and_checks(void **state)
{
    struct fx *f = *state;
    fset(&f->env, "AWS_ENDPOINT_URL", "http://10.0.0.1:9000,http://10.0.0.2:9000, https://h3");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "http://10.0.0.1:9000,http://10.0.0.2:9000, https://h3");
    fset(&f->env, "AWS_ENDPOINT_URL", "HTTP://UPPER:80");
    load_ok(f);
    fset(&f->env, "AWS_ENDPOINT_URL", "minio:9000");
    load_fails(f, -EINVAL, "AWS_ENDPOINT_URL", "'minio:9000'", NULL);
    fset(&f->env, "AWS_ENDPOINT_URL", "http://a,");
    load_fails(f, -EINVAL, "AWS_ENDPOINT_URL", NULL);
    fset(&f->env, "AWS_ENDPOINT_URL", "http://a b");
    load_fails(f, -EINVAL, "AWS_ENDPOINT_URL", NULL);
    fset(&f->env, "AWS_ENDPOINT_URL", "http://");
    load_fails(f, -EINVAL, "AWS_ENDPOINT_URL", NULL);
    fset(&f->env, "AWS_ENDPOINT_URL", NULL);
    write_file(f->conf, "[default]\nregion = us-east-1\nendpoint_url = ftp://x\n");
    char where[700];
    snprintf(where, sizeof where, "%s:3:", f->conf);
    load_fails(f, -EINVAL, where, "ftp://x", NULL);
}

static void test_ignore_configured_endpoints(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[default]\nendpoint_url = http://cfg\n");
    fset(&f->env, "AWS_ENDPOINT_URL_S3", "http://env");
    fset(&f->env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "");
    fset(&f->env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "bogus");
    load_fails(f, -EINVAL, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", NULL);
    fset(&f->env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "http://env");
    fset(&f->env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", NULL);
    write_file(f->conf, "[default]\nendpoint_url = http://cfg\nignore_configured_endpoint_urls = true\n");
    load_ok(f);
    assert_string_equal(f->a.endpoint, "");
    fset(&f->env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "0"); /* the variable beats the file */
    load_ok(f);
    assert_string_equal(f->a.endpoint, "http://env");
    write_file(f->conf, "[default]\nignore_configured_endpoint_urls = sometimes\n");
    load_fails(f, -EINVAL, "ignore_configured_endpoint_urls", "sometimes", NULL);
}

/* ---- CA bundle -------------------------------------------------------------------------- */

static void test_ca_bundle(void **state)
{
    struct fx *f = *state;
    char want[700];
    write_file(f->conf, "[default]\nca_bundle = ~/certs/ca.pem\n");
    load_ok(f);
    snprintf(want, sizeof want, "%s/certs/ca.pem", f->dir);
    assert_string_equal(f->a.ca_bundle, want);
    fset(&f->env, "AWS_CA_BUNDLE", "/etc/ssl/mine.pem");
    load_ok(f);
    assert_string_equal(f->a.ca_bundle, "/etc/ssl/mine.pem");
    fset(&f->env, "AWS_CA_BUNDLE", NULL);
    write_file(f->conf, "[default]\nca_bundle = certs/ca.pem\n");
    char where[700];
    snprintf(where, sizeof where, "%s:2: ca_bundle", f->conf);
    load_fails(f, -EINVAL, where, "relative", NULL);
}

/* ---- attempts per request ------------------------------------------------------------- */

static void test_max_attempts(void **state)
{
    struct fx *f = *state;
    load_ok(f);
    assert_int_equal(f->a.max_attempts, 0); /* unset: the client's default */
    write_file(f->conf, "[default]\nmax_attempts = 3\n");
    load_ok(f);
    assert_int_equal(f->a.max_attempts, 3);
    write_file(f->cred, "[default]\nmax_attempts = 7\n"); /* the credentials file wins, as in botocore */
    load_ok(f);
    assert_int_equal(f->a.max_attempts, 7);
    fset(&f->env, "AWS_MAX_ATTEMPTS", "1");
    load_ok(f);
    assert_int_equal(f->a.max_attempts, 1);
    const char *bad[] = {"0", "-2", "101", "3x", "4.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fset(&f->env, "AWS_MAX_ATTEMPTS", bad[i]);
        load_fails(f, -EINVAL, "AWS_MAX_ATTEMPTS", "whole number from 1 to 100", NULL);
    }
    fset(&f->env, "AWS_MAX_ATTEMPTS", NULL);
    write_file(f->cred, "[default]\nmax_attempts = many\n");
    char where[700];
    snprintf(where, sizeof where, "%s:2: max_attempts 'many'", f->cred);
    load_fails(f, -EINVAL, where, "whole number", NULL);
}

/* ---- anonymous -------------------------------------------------------------------------- */

static void test_anonymous(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "[default]\naws_access_key_id = A\naws_secret_access_key = B\n");
    write_file(f->conf, "[default]\nregion = eu-west-1\nendpoint_url = http://minio:9000\n");
    fset(&f->env, "AWS_ACCESS_KEY_ID", "K");
    const char *yes[] = {"1", "true", "yes", "TRUE", "on"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        fset(&f->env, "S3SHIM_NO_SIGN", yes[i]);
        load_ok(f); /* half a key pair in the environment does not matter: nothing is signed */
        assert_int_equal(f->a.anonymous, 1);
        assert_int_equal(f->a.have_creds, 0);
        assert_string_equal(f->a.access_key, "");
        assert_non_null(strstr(f->a.creds_source, "S3SHIM_NO_SIGN"));
        assert_string_equal(f->a.region, "eu-west-1");
        assert_string_equal(f->a.endpoint, "http://minio:9000");
    }
    fset(&f->env, "AWS_ACCESS_KEY_ID", NULL);
    fset(&f->env, "S3SHIM_NO_SIGN", "0");
    load_ok(f);
    assert_int_equal(f->a.anonymous, 0);
    assert_int_equal(f->a.have_creds, 1);
    fset(&f->env, "S3SHIM_NO_SIGN", "perhaps");
    load_fails(f, -EINVAL, "S3SHIM_NO_SIGN", "'perhaps'", NULL);
}

/* ---- INI syntax ------------------------------------------------------------------------- */

static void test_syntax_variants(void **state)
{
    struct fx *f = *state;
    write_file(f->cred, "\xEF\xBB\xBF# saved on Windows\r\n"
                        "[ default ]\r\n"
                        "  # indented comment\r\n"
                        "AWS_ACCESS_KEY_ID=UPPER\r\n"
                        "aws_secret_access_key:\tsec:ret=with/all+chars  \r\n"
                        "\r\n"
                        "unknown_key = ignored\r\n"
                        "aws_session_token = tok\r\n"
                        "   continuation of the token is not part of it\r\n");
    load_ok(f);
    assert_string_equal(f->a.access_key, "UPPER");
    assert_string_equal(f->a.secret_key, "sec:ret=with/all+chars");
    assert_string_equal(f->a.session_token, "tok");
    /* no final new line, and the legacy token name */
    write_file(f->cred, "[default]\naws_access_key_id = A\naws_secret_access_key = B\naws_security_token = OLD");
    load_ok(f);
    assert_string_equal(f->a.session_token, "OLD");
    write_file(f->cred, "[default]\naws_security_token = OLD\naws_session_token = NEW\n"
                        "aws_access_key_id = A\naws_secret_access_key = B\n");
    load_ok(f);
    assert_string_equal(f->a.session_token, "NEW");
    /* "key =" with nothing is unset */
    write_file(f->cred, "[default]\naws_access_key_id =\naws_secret_access_key =\n");
    write_file(f->conf, "[default]\nregion =\n");
    load_ok(f);
    expect_defaults(&f->a);
    /* an empty file */
    write_file(f->cred, "");
    write_file(f->conf, "\n\n");
    load_ok(f);
    expect_defaults(&f->a);
}

struct bad_case {
    const char *text;
    int line;
    const char *frag;
};

static void test_malformed_files(void **state)
{
    struct fx *f = *state;
    static const struct bad_case cases[] = {
        {"aws_access_key_id = A\n[default]\n", 1, "before any [section]"},
        {"# c\n\n[default]\nthis line has no delimiter\n", 4, "expected 'key = value'"},
        {"[default\naws_access_key_id = A\n", 1, "without ']'"},
        {"[default]\n[]\n", 2, "empty section name"},
        {"[default]\n= value\n", 2, "empty key"},
        {"[default]\ns3 =\n  no delimiter here\n", 3, "under 's3 ='"},
        {"[default]\naws_access_key_id = A\n[x]\n[default]\n", 4, "appears twice"},
        {"[default]\naws_access_key_id = A\nregion = eu-west-1\naws_access_key_id = B\n", 4, "set twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *paths[2] = {f->cred, f->conf};
        for (int w = 0; w < 2; w++) {
            unlink(f->cred);
            unlink(f->conf);
            write_file(paths[w], cases[i].text);
            char where[700];
            snprintf(where, sizeof where, "%s:%d: ", paths[w], cases[i].line);
            load_fails(f, -EINVAL, where, cases[i].frag, NULL);
        }
    }
    /* other profiles' duplicate keys are none of our business */
    unlink(f->conf);
    write_file(f->cred, "[x]\na = 1\na = 2\n[default]\naws_access_key_id = A\naws_secret_access_key = B\n");
    load_ok(f);
    /* a NUL byte */
    FILE *fp = fopen(f->cred, "w");
    assert_non_null(fp);
    fwrite("[default]\n\0\n", 1, 12, fp);
    fclose(fp);
    load_fails(f, -EINVAL, f->cred, "NUL", NULL);
}

static void test_values_too_long_in_file(void **state)
{
    struct fx *f = *state;
    char text[2000], big[1100];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(text, sizeof text, "[default]\naws_secret_access_key = x\naws_access_key_id = %.300s\n", big);
    write_file(f->cred, text);
    char where[700];
    snprintf(where, sizeof where, "%s:3:", f->cred);
    load_fails(f, -EINVAL, where, "aws_access_key_id", "too long", NULL);
    unlink(f->cred);
    snprintf(text, sizeof text, "[default]\nendpoint_url = http://%s\n", big);
    write_file(f->conf, text);
    snprintf(where, sizeof where, "%s:2:", f->conf);
    load_fails(f, -EINVAL, where, "endpoint_url", NULL);
    /* a session token may be long: it lives on the heap */
    char *tok = malloc(8001), *t2 = malloc(9000);
    assert_non_null(tok);
    assert_non_null(t2);
    memset(tok, 'T', 8000);
    tok[8000] = '\0';
    snprintf(t2, 9000, "[default]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = %s\n", tok);
    write_file(f->cred, t2);
    unlink(f->conf);
    load_ok(f);
    assert_string_equal(f->a.session_token, tok);
    free(tok);
    free(t2);
}

static void test_unsupported_credential_sources(void **state)
{
    struct fx *f = *state;
    write_file(f->conf, "[profile assumer]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n"
                        "region = eu-west-1\n"
                        "[profile sso]\nsso_session = corp\n");
    fset(&f->env, "AWS_PROFILE", "assumer");
    load_ok(f);
    assert_int_equal(f->a.have_creds, 0);
    assert_non_null(strstr(f->a.creds_source, "role_arn"));
    assert_non_null(strstr(f->a.creds_source, "not support"));
    assert_string_equal(f->a.region, "eu-west-1");
    fset(&f->env, "AWS_PROFILE", "sso");
    load_ok(f);
    assert_non_null(strstr(f->a.creds_source, "sso_session"));
    /* keys from the environment still work with such a profile */
    fset(&f->env, "AWS_ACCESS_KEY_ID", "K");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "S");
    load_ok(f);
    assert_string_equal(f->a.creds_source, "environment");
}

/* ---- the API's edges -------------------------------------------------------------------- */

static void test_process_environment(void **state)
{
    struct fx *f = *state;
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "S3SHIM_NO_SIGN", NULL,
    };
    for (int i = 0; vars[i]; i++) unsetenv(vars[i]);
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", f->dir, 1);
    write_file(f->cred, "[default]\naws_access_key_id = PROC\naws_secret_access_key = PROCS\n");
    setenv("AWS_REGION", "ca-central-1", 1);
    struct aws_settings a;
    char err[256];
    int r = aws_settings_load(&a, NULL, NULL, err, sizeof err);
    unsetenv("AWS_REGION");
    if (old_home) setenv("HOME", old_home, 1);
    else unsetenv("HOME");
    free(old_home);
    assert_int_equal(r, 0);
    assert_string_equal(a.access_key, "PROC");
    assert_string_equal(a.region, "ca-central-1");
    aws_settings_free(&a);
}

static void test_no_error_buffer(void **state)
{
    struct fx *f = *state;
    fset(&f->env, "AWS_ACCESS_KEY_ID", "K");
    aws_settings_free(&f->a);
    assert_int_equal(aws_settings_load(&f->a, fget, &f->env, NULL, 0), -EINVAL);
    char tiny[8];
    assert_int_equal(aws_settings_load(&f->a, fget, &f->env, tiny, sizeof tiny), -EINVAL);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    struct aws_settings z;
    memset(&z, 0, sizeof z);
    aws_settings_free(&z); /* harmless on a zeroed struct */
    aws_settings_free(&z);
}

static void test_secrets_wiped_on_free(void **state)
{
    struct fx *f = *state;
    fset(&f->env, "AWS_ACCESS_KEY_ID", "K");
    fset(&f->env, "AWS_SECRET_ACCESS_KEY", "SECRET");
    fset(&f->env, "AWS_SESSION_TOKEN", "TOKEN");
    load_ok(f);
    aws_settings_free(&f->a);
    assert_string_equal(f->a.secret_key, "");
    assert_null(f->a.session_token);
    assert_int_equal(f->a.have_creds, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep cmocka's lines whole when stderr is merged */
    const struct CMUnitTest tests[] = {
        T(test_nothing_configured),
        T(test_never_reads_working_directory),
        T(test_env_credentials_win),
        T(test_env_half_a_key_pair),
        T(test_env_values_too_long),
        T(test_default_profile_from_credentials),
        T(test_named_profile),
        T(test_named_profile_missing),
        T(test_partial_profile_keys),
        T(test_explicit_credentials_file),
        T(test_unreadable_file),
        T(test_file_too_big),
        T(test_config_profile_sections),
        T(test_config_profile_default_form),
        T(test_credentials_file_beats_config),
        T(test_region_precedence),
        T(test_region_checked),
        T(test_endpoint_precedence),
        T(test_endpoint_other_services_ignored),
        T(test_endpoint_list_and_checks),
        T(test_ignore_configured_endpoints),
        T(test_ca_bundle),
        T(test_max_attempts),
        T(test_anonymous),
        T(test_syntax_variants),
        T(test_malformed_files),
        T(test_values_too_long_in_file),
        T(test_unsupported_credential_sources),
        T(test_process_environment),
        T(test_no_error_buffer),
        T(test_secrets_wiped_on_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
