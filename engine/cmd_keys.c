/* cmd_keys.c: `weft keys`: list, rotate and retire the signing keys. */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "engine/captoken.h"
#include "engine/cmd.h"
#include "runtime/util.h"

static void
keys_usage(FILE *f)
{
	fprintf(f,
"usage: weft keys [list | rotate | retire KID] [--state-dir DIR] [--json]\n"
"\n"
"The Ed25519 keys that sign capability tokens (docs/security.md).  They\n"
"live in STATE_DIR/keys: made on first use, private key mode 0600.\n"
"Workers only ever receive the public keys.\n"
"\n"
"  list      the keys: id, whether it signs (current), public key\n"
"  rotate    make a new signing key; the old private key is deleted, its\n"
"            public key kept so tokens it signed verify until they expire\n"
"  retire K  forget public key K (not the current one): tokens it signed\n"
"            stop verifying\n"
"\n"
"options:\n"
"  --state-dir DIR  default $WEFT_STATE_DIR, $XDG_STATE_HOME/weft or\n"
"                   ~/.local/state/weft\n"
"  --json           list as JSON\n");
}

static int
keys_list(const struct captoken_keys *k, int json)
{
	json_t *pubs = captoken_keys_public(k), *out, *v;
	const char *cur = captoken_keys_current(k);
	char kid[CAPTOKEN_KID_LEN + 1], err[256];
	size_t i;

	out = json_array();
	json_array_foreach(pubs, i, v) {
		struct captoken_keys *one = captoken_keys_new();

		/* The key id is derived from the public key. */
		if (captoken_pubkey_import(one, json_string_value(v), kid, err,
		    sizeof err) != 0)
			snprintf(kid, sizeof kid, "?");
		captoken_keys_free(one);
		json_array_append_new(out, json_pack("{s:s, s:b, s:O}", "kid",
		    kid, "current", cur != NULL && strcmp(cur, kid) == 0,
		    "public_key", v));
	}
	json_decref(pubs);
	if (json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
	} else
		json_array_foreach(out, i, v)
			printf("%s  %-7s  %s\n", json_string_value(json_object_get(v,
			    "kid")), json_is_true(json_object_get(v, "current")) ?
			    "current" : "kept", json_string_value(json_object_get(v,
			    "public_key")));
	json_decref(out);
	return WEFT_EXIT_OK;
}

int
cmd_keys(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct captoken_keys *k;
	const char *dir = NULL, *action = "list";
	char path[PATH_MAX], err[512], kid[CAPTOKEN_KID_LEN + 1];
	int ch, json = 0, rc = WEFT_EXIT_OK;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			dir = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			keys_usage(stdout);
			return WEFT_EXIT_OK;
		default:
			keys_usage(stderr);
			return WEFT_EXIT_USAGE;
		}
	}
	if (optind < argc)
		action = argv[optind++];
	if (strcmp(action, "list") != 0 && strcmp(action, "rotate") != 0 &&
	    strcmp(action, "retire") != 0) {
		fprintf(stderr, "weft keys: unknown action '%s' (list, rotate, "
		    "retire)\n", action);
		return WEFT_EXIT_USAGE;
	}
	if (argc - optind != (strcmp(action, "retire") == 0 ? 1 : 0)) {
		keys_usage(stderr);
		return WEFT_EXIT_USAGE;
	}
	if (dir == NULL) {
		if (state_dir_path(path, sizeof path, err, sizeof err) != 0) {
			fprintf(stderr, "weft keys: %s\n", err);
			return WEFT_EXIT_USAGE;
		}
		dir = path;
	}
	if (captoken_keys_load_or_create(dir, &k, err, sizeof err) != 0) {
		fprintf(stderr, "weft keys: %s\n", err);
		return WEFT_EXIT_FAILED;
	}
	if (strcmp(action, "list") == 0)
		rc = keys_list(k, json);
	else if (strcmp(action, "rotate") == 0) {
		if (captoken_keys_rotate(k, kid, err, sizeof err) != 0) {
			fprintf(stderr, "weft keys: rotate: %s\n", err);
			rc = WEFT_EXIT_FAILED;
		} else
			printf("new signing key %s\n", kid);
	} else if (captoken_keys_retire(k, argv[optind], err,
	    sizeof err) != 0) {
		fprintf(stderr, "weft keys: retire: %s\n", err);
		rc = WEFT_EXIT_FAILED;
	} else
		printf("retired key %s\n", argv[optind]);
	captoken_keys_free(k);
	return rc;
}
