// Package packaging holds erpsync's Debian package: the nfpm configuration
// (nfpm.yaml), the maintainer scripts (scripts/), the copyright file, the
// manual page and the lintian overrides. `make deb` builds
// dist/erpsync_<version>_<arch>.deb; the tests here build the package, run
// lintian on it, and install, upgrade, remove and purge it with dpkg.
package packaging
