/*
 * rusage.c — runs a client and reports its CPU and peak RSS for
 * bench/harness: "RUSAGE user_s sys_s maxrss_kb" on fd 3 (when open) after
 * the client exits, with the client's exit status as its own.
 *
 * Why a launcher: Linux records a process's peak RSS across execve, so a
 * client started directly by the harness (a Go process serving the test
 * server) would report the harness's RSS as its own. Started from this
 * small process, it reports its own.
 *
 *   rusage PROGRAM [ARGS...]
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rusage PROGRAM [ARGS...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 2;
    }
    if (pid == 0) {
        close(3);
        execvp(argv[1], argv + 1);
        perror("rusage: exec");
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) {
        perror("rusage: wait4");
        return 2;
    }
    FILE *f = fdopen(3, "w");
    if (f) {
        fprintf(f, "RUSAGE %ld.%06ld %ld.%06ld %ld\n", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
                (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
        fclose(f);
    }
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
