/* SPDX-License-Identifier: MIT */
/* Subcommands of the vshm tool.  Each returns the process exit code:
 * 0 success, 1 runtime failure, 2 usage error. */
#ifndef VSHM_CMD_H
#define VSHM_CMD_H

#include <stdio.h>
#include <stdlib.h>

/*
 * The decimal number @arg of option --@opt, in [@min, @max]: 0 and *@out,
 * or one line naming the problem on stderr and -1.
 */
static inline int cmd_number(const char *cmd, const char *opt, const char *arg,
			     long min, long max, long *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*end || end == arg || v < min || v > max) {
		fprintf(stderr, "vshm %s: bad --%s '%s': expected %ld..%ld\n", cmd, opt, arg, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int vshm_cmd_hub(int argc, char **argv);
int vshm_cmd_serve(int argc, char **argv);
int vshm_cmd_io(int argc, char **argv);

#endif
