/* notify.h - systemd's readiness protocol (sd_notify(3)), spoken directly:
 * one datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (an abstract socket when it starts with '@'). Without
 * NOTIFY_SOCKET every call is a no-op. Main thread only. */
#ifndef WHMGATE_NOTIFY_H
#define WHMGATE_NOTIFY_H

/* Reads NOTIFY_SOCKET and connects to it (before privileges are dropped or
 * a sandbox closes the path). Returns 0 (also when it is not set), or -1
 * after logging when it is set but cannot be used. */
int notify_init(void);
/* Sends one message, fmt as printf. Returns 0 when sent or nobody
 * listens, -1 after logging when the send failed. */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sends "RELOADING=1" with MONOTONIC_USEC, as systemd wants it. */
int notify_reloading(void);
void notify_fini(void);

#endif
