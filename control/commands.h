/* SPDX-License-Identifier: BSD-3-Clause */
/* The subcommands of the nsplit program; each takes argv[0] = its name, returns an exit code. */
#ifndef NSL_COMMANDS_H
#define NSL_COMMANDS_H

int nsl_cmd_train(int argc, char **argv);
int nsl_cmd_launch(int argc, char **argv);
int nsl_cmd_profile(int argc, char **argv);
int nsl_cmd_plan(int argc, char **argv);
int nsl_cmd_simulate(int argc, char **argv);
int nsl_cmd_eval(int argc, char **argv);
int nsl_cmd_shard(int argc, char **argv);
int nsl_cmd_link(int argc, char **argv);

#endif
