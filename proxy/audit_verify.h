/* audit_verify.h - `whmgate audit verify` (SPEC section 7): checks audit
 * files as one chain and prints what it found on stdout. */
#ifndef WHMGATE_AUDIT_VERIFY_H
#define WHMGATE_AUDIT_VERIFY_H

/* `whmgate audit verify FILE... [--key KEYFILE] [--anchor SEQ:HASH]`
 * with argv holding what follows "verify": checks the files as one chain
 * in the order their links give (FILE "-" is standard input; gzip files
 * are read compressed), prints the verdict, the order used and the head
 * `head SEQ:HASH`. Returns the exit code: 0 intact, 1 broken (or the
 * anchor is not in the trail), 2 a file that cannot be read or a usage
 * error. */
int audit_verify_main(int argc, char **argv);

/* Checks files as one chain. Prints a summary or the first broken line on
 * stdout. Returns 0 if intact, else -1. keyfile: NULL for plain SHA-256. */
int audit_verify(char **files, int nfiles, const char *keyfile);

#endif
