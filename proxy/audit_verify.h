/* audit_verify.h - `whmgate audit verify` (SPEC section 7): checks audit
 * files as one chain and prints what it found on stdout. */
#ifndef WHMGATE_AUDIT_VERIFY_H
#define WHMGATE_AUDIT_VERIFY_H

/* Checks files as one chain. Prints a summary or the first broken line on
 * stdout. Returns 0 if intact. keyfile: NULL for plain SHA-256. */
int audit_verify(char **files, int nfiles, const char *keyfile);

#endif
