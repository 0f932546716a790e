# shellcheck shell=bash
# The top-level folders of a root filesystem that make up its userland. Every other top-level
# folder of the machine (/tmp, /work, /home, …) is bound into a root at its own path (an engine
# row's root in scripts/engines, a bare lab host's root in scripts/lab), so that the paths a
# caller passes (DIR, bind mount sources, the checkout) mean the same inside and outside.
# shellcheck disable=SC2034
USERLAND='^(bin|boot|dev|etc|lib|lib32|lib64|libx32|proc|run|sbin|sys|usr|var|lost\+found)$'
