# Sourced by run.sh and test.sh: Debian packages TOM uses at run time.
# espeak-ng speaks languages no installed Piper voice covers (German, until one is configured).
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing espeak-ng (Debian) ..."
    apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null
  else
    echo "warning: espeak-ng is missing (apt-get install espeak-ng); languages without a" \
         "Piper voice cannot be spoken" >&2
  fi
fi
