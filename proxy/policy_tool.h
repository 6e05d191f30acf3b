/* policy_tool.h - `whmgate policy show|check|suggest|replay` (SPEC section
 * 12) and the policy warnings of -t. None of these calls WHM: they read the
 * config through conf.c, parse requests through params.c, decide through
 * policy.c and read records through record_read.c, as the daemon does. */
#ifndef WHMGATE_POLICY_TOOL_H
#define WHMGATE_POLICY_TOOL_H

#include <stdio.h>

struct conf;

/* argv[0] is the subcommand ("show", "check", ...). Returns the exit
 * status: 0 ok/allow/no flip, 1 refuse/flip, 2 usage or config error. */
int policy_tool_main(int argc, char **argv);

/* Prints "warning: FILE: <json path>: <text>" lines for the policy parts
 * of a loaded conf ("allow": "any"). */
void policy_tool_warnings(const struct conf *c, FILE *out);

#endif
