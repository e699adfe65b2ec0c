/* aws_config.h - credentials, region, endpoint and CA bundle, found the way the AWS CLI
 * finds them.
 *
 * Users already have AWS_* variables and ~/.aws/{credentials,config}; the S3 backend
 * should work with exactly those. This is only the static part of the CLI's chain
 * (environment, shared credentials file, config file): no instance metadata, no SSO,
 * no assume-role, no credential_process. Loading is a pure function of the getenv
 * callback and the two files, so `s3shim config` and the unit tests see what the
 * library sees. Nothing is ever read relative to the working directory. */
#ifndef S3SHIM_AWS_CONFIG_H
#define S3SHIM_AWS_CONFIG_H

#include <stddef.h>

/* Attempts per request when neither AWS_MAX_ATTEMPTS nor max_attempts says (the CLI's legacy mode). */
#define AWS_DEFAULT_ATTEMPTS 5

struct aws_settings {
    char access_key[256], secret_key[256];
    char *session_token; /* heap or NULL */
    int have_creds;
    char region[64];       /* default "us-east-1" */
    char endpoint[1024];   /* "" = AWS default (https://s3.REGION.amazonaws.com); may be a comma-separated list */
    char ca_bundle[1024];  /* "" = system default */
    char profile[128];     /* "default" unless AWS_PROFILE */
    int anonymous;         /* S3SHIM_NO_SIGN=1 */
    int max_attempts;      /* per request, the first included; 0 = not set (the client's default) */
    char creds_source[160]; /* human text: "environment", "profile 'x' in /root/.aws/credentials" */
};

typedef const char *(*aws_getenv_fn)(const char *name, void *ctx);

/* Load as the AWS CLI does. get == NULL means the process environment.
 *
 * Credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) from the
 * environment win; otherwise the profile (AWS_PROFILE or "default") from
 * AWS_SHARED_CREDENTIALS_FILE (default $HOME/.aws/credentials, section "[NAME]"), then from
 * AWS_CONFIG_FILE (default $HOME/.aws/config, section "[profile NAME]" or "[default]").
 * Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, "us-east-1".
 * Endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then from the profile: "s3 =" /
 * "  endpoint_url = ..." in its "[services NAME]" section, the same nested under the
 * profile itself, its endpoint_url. AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (or
 * ignore_configured_endpoint_urls in the profile) drops them all. Each comma-separated
 * entry must start with http:// or https://.
 * CA bundle: AWS_CA_BUNDLE, then the profile's ca_bundle.
 * Attempts per request: AWS_MAX_ATTEMPTS, then the profile's max_attempts (1 to 100).
 * S3SHIM_NO_SIGN=1|true|yes|on -> anonymous: no credentials are looked up.
 * Paths: a leading "~/" is $HOME; any other relative path is refused; with no absolute
 * $HOME the default files are skipped.
 *
 * Returns 0; or -EINVAL (-errno for an unreadable file) with a one-line reason in err:
 * a malformed file (naming file and line), a profile named by AWS_PROFILE that neither
 * file has, half a key pair, an explicitly named file that does not exist, a value too
 * long for its field, a bad region, endpoint or max_attempts. Missing default files are not an error
 * (have_creds = 0). On failure *a is left zeroed; aws_settings_free is safe either way. */
int aws_settings_load(struct aws_settings *a, aws_getenv_fn get, void *ctx, char *err, size_t errlen);
/* Wipe the secrets and release the session token. Safe on a zeroed struct. */
void aws_settings_free(struct aws_settings *a);

#endif
