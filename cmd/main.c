// SPDX-License-Identifier: MIT
/* vshm: one tool, several subcommands. */
#include <stdio.h>
#include <string.h>

#include <vshm/vshm.h>
#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vshm COMMAND [ARGS]\n"
		"\n"
		"virtio over a restricted shared window.\n"
		"\n"
		"commands:\n"
		"  hub     create a window and hand it out (QEMU ivshmem-server protocol)\n"
		"  serve   serve virtio devices (blk, rng, console) to the window's driver\n"
		"  io      attach as a driver: read, write, verify a disk; rng bytes; console\n"
		"\n"
		"vshm COMMAND --help shows the options of each.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "hub"))
		return vshm_cmd_hub(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return vshm_cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "io"))
		return vshm_cmd_io(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("vshm %s (window ABI %d.%d)\n", VSHM_VERSION_STRING, VSHM_ABI_MAJOR, VSHM_ABI_MINOR);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "vshm: unknown command '%s' (try: vshm --help)\n", argv[1]);
	return 2;
}
