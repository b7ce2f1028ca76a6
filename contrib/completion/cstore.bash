# bash completion for cstore: verbs, each verb's options (read from its own
# --help, so they never go stale), image names for the verbs that take one,
# files and directories elsewhere. Installed by cmake to
# share/bash-completion/completions/cstore.

_cstore_verbs="build run load import export images inspect tag rmi du gc fsck help"
_cstore_verbs="$_cstore_verbs login logout"
_cstore_verbs="$_cstore_verbs pull"
_cstore_verbs="$_cstore_verbs push"
_cstore_verbs="$_cstore_verbs cache"

# The long options a verb's --help lists.
_cstore_options()
{
    "$1" "$2" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# NAME:TAG of every image (the first two columns of `cstore images`).
_cstore_images()
{
    "$1" "${@:2}" images 2>/dev/null | awk 'NR > 1 { print $1 ":" $2 }'
}

_cstore()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local cmd=${COMP_WORDS[0]} verb= i root=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --root) root=(--root "${COMP_WORDS[i + 1]}"); ((i++)) ;;
        -*) ;;
        *) verb=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [ -z "$verb" ]; then
        if [ "$prev" = --root ]; then
            COMPREPLY=($(compgen -d -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_cstore_verbs --root --help" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_cstore_options "$cmd" "$verb")" -- "$cur"))
        return
    fi
    case $verb in
    cache)
        # Its one sub-verb, then --ref and the policy (options above).
        if [ "$prev" = cache ]; then COMPREPLY=($(compgen -W "prune" -- "$cur")); fi ;;
    run | export | push | inspect | tag | rmi)
        COMPREPLY=($(compgen -W "$(_cstore_images "$cmd" "${root[@]}")" -- "$cur")) ;;
    help)
        COMPREPLY=($(compgen -W "$_cstore_verbs" -- "$cur")) ;;
    *)
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _cstore cstore
