/* SPDX-License-Identifier: MIT */
/* Subcommands of the vshm tool.  Each returns the process exit code:
 * 0 success, 1 runtime failure, 2 usage error. */
#ifndef VSHM_CMD_H
#define VSHM_CMD_H

int vshm_cmd_hub(int argc, char **argv);
int vshm_cmd_serve(int argc, char **argv);
int vshm_cmd_io(int argc, char **argv);

#endif
