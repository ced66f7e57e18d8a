# bash completion for sockctl. Source it, or install it as
# /usr/share/bash-completion/completions/sockctl (make install does).
#
# It keeps no list of its own: verbs, flags, the flags that take a value,
# the verbs that take a unit, and the unit names (from the sockd at the
# command line's --api, or $SOCKD_API) come from `sockctl __complete`, as
# for the zsh completion. reset-failed offers the failed units only.

# _sockctl_api: the --api of the command line being completed.
_sockctl_api() {
	local i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		case ${COMP_WORDS[i]} in
		--api | -api) echo "--api=${COMP_WORDS[i + 1]}" ;;
		--api=* | -api=*) echo "${COMP_WORDS[i]}" ;;
		esac
	done
}

_sockctl() {
	local cur prev verb="" i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	local values
	values=" $(sockctl __complete values 2>/dev/null | tr '\n' ' ') "

	case $prev in
	--api | -api)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	esac
	if [[ $prev == -* && $values == *" $prev "* ]]; then
		return # a flag's value: nothing to offer
	fi

	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*=*) ;;
		-*) [[ $values == *" ${COMP_WORDS[i]} "* ]] && ((i++)) ;;
		*)
			verb=${COMP_WORDS[i]}
			break
			;;
		esac
	done

	# exec UNIT -- CMD [ARGS...]: after --, a command, then its arguments.
	if [[ $verb == exec ]]; then
		local j
		for ((j = i + 1; j < COMP_CWORD; j++)); do
			if [[ ${COMP_WORDS[j]} == -- ]]; then
				if ((COMP_CWORD == j + 1)); then
					COMPREPLY=($(compgen -c -- "$cur"))
				else
					COMPREPLY=($(compgen -f -- "$cur"))
				fi
				return
			fi
		done
	fi

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(sockctl __complete flags $verb 2>/dev/null)" -- "$cur"))
		return
	fi
	if [[ -z $verb ]]; then
		COMPREPLY=($(compgen -W "$(sockctl __complete verbs 2>/dev/null | cut -d: -f1)" -- "$cur"))
		return
	fi
	if ! sockctl __complete unit-verbs 2>/dev/null | grep -qx -- "$verb"; then
		return
	fi
	# Complete the unit only as the verb's first argument.
	local n=0
	for ((i = i + 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*=*) ;;
		-*) [[ $values == *" ${COMP_WORDS[i]} "* ]] && ((i++)) ;;
		*) ((n++)) ;;
		esac
	done
	if ((n == 0)); then
		local which=
		[[ $verb == reset-failed ]] && which=failed
		COMPREPLY=($(compgen -W "$(sockctl $(_sockctl_api) __complete units $which 2>/dev/null)" -- "$cur"))
	fi
}
complete -F _sockctl sockctl
