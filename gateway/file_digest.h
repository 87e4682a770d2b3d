/*
 * file_digest: the SHA-256 of a file's contents, as lowercase hex. Used to
 * tell whether a file changed (the config on a watch event, TLS files in a
 * service's fingerprint).
 */
#ifndef PG_GATEWAY_FILE_DIGEST_H
#define PG_GATEWAY_FILE_DIGEST_H

#define FILE_DIGEST_HEX 65 /* 64 hex digits and a NUL */

/* 0 with hex filled, or -1 when the file cannot be read (hex is then ""). */
int file_digest(const char *path, char hex[FILE_DIGEST_HEX]);

#endif
