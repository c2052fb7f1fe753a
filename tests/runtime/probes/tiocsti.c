/* The terminal-injection attack: push "echo INJECTED" into the input of whatever terminal
   the process can reach (its stdin, stdout, stderr, /dev/tty) with ioctl(TIOCSTI), and say
   for each fd whether the kernel took it. Built static by tests/runtime/conftest.py. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void) {
    const char *line = "echo INJECTED\n";
    int fds[4] = {0, 1, 2, open("/dev/tty", O_RDWR | O_NOCTTY)};
    const char *names[4] = {"stdin", "stdout", "stderr", "/dev/tty"};
    int open_errno = errno;
    for (int i = 0; i < 4; i++) {
        if (fds[i] < 0) {
            fprintf(stderr, "%s: open: %s\n", names[i], strerror(open_errno));
            continue;
        }
        int ok = 1;
        for (const char *p = line; *p; p++) {
            if (ioctl(fds[i], TIOCSTI, p) < 0) {
                ok = 0;
                break;
            }
        }
        fprintf(stderr, "%s: %s\n", names[i], ok ? "INJECTED" : strerror(errno));
    }
    return 0;
}
