# bash completion for sockctl. Source it, or install it as
# /usr/share/bash-completion/completions/sockctl.
#
# Unit names come from "sockctl list --json" on the same --api socket as
# the command line being completed (or $SOCKD_API); reset-failed offers
# the failed units only.

# _sockctl_units [failed]: the unit names, or only the failed ones.
_sockctl_units() {
	local api=() i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		case ${COMP_WORDS[i]} in
		--api | -api) api=(--api "${COMP_WORDS[i + 1]}") ;;
		--api=* | -api=*) api=("${COMP_WORDS[i]}") ;;
		esac
	done
	local match='"name":"[^"]*"'
	if [[ $1 == failed ]]; then
		match='"name":"[^"]*","service":{"state":"failed"'
	fi
	sockctl "${api[@]}" list --json 2>/dev/null |
		grep -o "$match" | sed -e 's/^"name":"//' -e 's/",.*$//' -e 's/"$//' -e 's/\.service$//'
}

_sockctl() {
	local cur prev verb="" i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	local verbs="list status start stop restart reload-app reload reset-failed logs events exec help"
	local global="--api --json --timeout --help"

	case $prev in
	--api | -api)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--timeout | -timeout | -n | --n)
		return
		;;
	esac

	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--api | -api | --timeout | -timeout | -n | --n) ((i++)) ;;
		-*) ;;
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
		local flags=$global
		case $verb in
		restart) flags+=" --wait --stop-first" ;;
		logs) flags+=" -n" ;;
		esac
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return
	fi
	if [[ -z $verb ]]; then
		COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
		return
	fi
	case $verb in
	status | start | stop | restart | reload-app | reset-failed | logs | events | exec)
		# Complete the unit only as the verb's first argument.
		local n=0
		for ((i = i + 1; i < COMP_CWORD; i++)); do
			case ${COMP_WORDS[i]} in
			--api | -api | --timeout | -timeout | -n | --n) ((i++)) ;;
			-*) ;;
			*) ((n++)) ;;
			esac
		done
		if ((n == 0)); then
			local which=
			[[ $verb == reset-failed ]] && which=failed
			COMPREPLY=($(compgen -W "$(_sockctl_units $which)" -- "$cur"))
		fi
		;;
	esac
}
complete -F _sockctl sockctl
