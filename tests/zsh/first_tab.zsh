# Types `tokvault token g<TAB>` into an interactive zsh whose fpath holds
# the completion script as _tokvault (where packages install it), and
# prints COMPLETED when the line became `tokvault token gmail`.
#
#   zsh -f first_tab.zsh FPATH_DIR
#
# tokvault, TOKVAULT_VAULT and TOKVAULT_IDENTITY come from the environment.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='> '; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D; print RE''ADY"

# Reads the terminal until it shows $1 (not the echo of what was typed).
wait_for() {
    local deadline=$((SECONDS + 30)) chunk
    out=""
    while (( SECONDS < deadline )); do
        if zpty -r -t z chunk; then
            out+=$chunk
            [[ $out == *$1* ]] && return 0
        else
            sleep 0.1
        fi
    done
    return 1
}

wait_for READY || { print -r -- "zsh did not start: ${(q)out}"; exit 1 }
zpty -w -n z $'tokvault token g\t'
if wait_for 'token gmail'; then
    print COMPLETED
else
    print -r -- "NOT COMPLETED: ${(q)out}"
fi
zpty -d z
