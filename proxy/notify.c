/* notify.c - see notify.h. */
#define _GNU_SOURCE
#include "notify.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int notify_fd = -1;

int
notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	size_t n;

	if (path == NULL || *path == '\0')
		return 0;
	n = strlen(path);
	/* Only a path or an abstract name: systemd's vsock addresses are
	 * for virtual machines, not services. */
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sun.sun_path)) {
		log_warn("NOTIFY_SOCKET %s: not a socket path or abstract name", path);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	/* An abstract name's length is part of the name: no trailing NUL. */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '@' ? 0 : 1));
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd == -1) {
		log_warn("NOTIFY_SOCKET: socket: %s", strerror(errno));
		return -1;
	}
	/* Connected now, so the permission on a path is checked while we
	 * may still pass it; later messages go with send(2). */
	if (connect(notify_fd, (struct sockaddr *)&sun, len) == -1) {
		log_warn("NOTIFY_SOCKET %s: connect: %s", path, strerror(errno));
		close(notify_fd);
		notify_fd = -1;
		return -1;
	}
	return 0;
}

int
notify_send(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (notify_fd == -1)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	/* Non-blocking: a stuck service manager never stalls the loop. */
	while (send(notify_fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		if (errno == EINTR)
			continue;
		log_warn("NOTIFY_SOCKET: send: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ull +
	    (unsigned long long)ts.tv_nsec / 1000);
}

void
notify_fini(void)
{
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
}
