# tests/helpers_completion.bash -- drive the bash and zsh completion files
# as the shells would, and print what they offer, one word per line.
#
#   load helpers_completion
#   run bash_complete completions/bash/dsys-serve dsys-serve --io ''
#   run zsh_complete completions/zsh/_dsys-serve dsys-serve --io ''
#
# The last WORD is the one being completed (at the end of the line).  Run
# them in a directory holding files, so that file names offered where they
# do not belong show.

# bash_complete FILE WORD...: the function FILE registers for WORD[0]
# (`complete -p` names it) called as bash calls it; COMPREPLY printed.
bash_complete() {
	bash -c '
		. "$1"; shift
		fn=$(complete -p "$1" | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
		[ -n "$fn" ] || { echo "no completion function for $1" >&2; exit 1; }
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		prev=; (($# > 1)) && prev=${@: -2:1}
		"$fn" "$1" "${@: -1}" "$prev"
		((${#COMPREPLY[@]} == 0)) || printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}

# zsh_complete FILE WORD...: FILE sourced by zsh -f with words, CURRENT
# and PREFIX set and the completion system's builtins stubbed: compadd
# prints its words, _files, _urls and _message print <files>, <urls> and
# <message:TEXT>.  (zsh's own matching against PREFIX is not applied.)
zsh_complete() {
	zsh -f -c '
		compadd() {
			local -a out
			while (($#)); do
				case $1 in
				(-a) shift; out+=(${(P)1}) ;;
				(--) shift; out+=("$@"); break ;;
				(-[JVXxPSpsqrRWFMOAEDI12]) shift ;;
				(-*) ;;
				(*) out+=("$1") ;;
				esac
				shift
			done
			((${#out} == 0)) || print -rl -- $out
		}
		_files() { print -r -- "<files>"; }
		_urls() { print -r -- "<urls>"; }
		_message() { print -r -- "<message:${@[-1]}>"; }
		_call_program() { shift; "$@"; }
		compset() { [[ $1 == -P ]] && PREFIX=${PREFIX#${~2}}; return 0; }
		file=$1; shift
		words=("$@"); CURRENT=$#; PREFIX=${words[-1]}
		source "$file"' _ "$@"
}
