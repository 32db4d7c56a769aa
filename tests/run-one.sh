#!/bin/sh
# prove's --exec: bats files run under bats --tap, everything else as itself.
case "$1" in
*.bats) exec bats --tap "$1" ;;
*) exec "$1" ;;
esac
