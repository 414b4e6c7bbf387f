#!/bin/sh
# One-shot job (temporalio/admin-tools): creates the namespace and the custom search attributes
# ccfs-export writes (workflows/search-attributes.ts). Safe to run again.
set -eu
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-30d}"
# Name=Type pairs; kept equal to SEARCH_ATTRIBUTES by test/unit/deploy-files.test.ts.
SEARCH_ATTRIBUTES="CcfsExportId=Keyword CcfsTenant=Keyword CcfsDataType=Keyword CcfsRangeBegin=Datetime CcfsRangeEnd=Datetime CcfsExportState=Keyword CcfsKind=Keyword CcfsDay=Keyword CcfsResponseIds=KeywordList"

echo "waiting for Temporal at $ADDRESS"
i=0
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -ge 60 ] && { echo "Temporal did not become healthy" >&2; exit 1; }
  sleep 2
done

if temporal operator namespace describe --address "$ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --address "$ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"
  echo "namespace $NAMESPACE created (retention $RETENTION)"
fi

# A new namespace reaches every frontend's cache only after a few seconds.
i=0
until existing="$(temporal operator search-attribute list --address "$ADDRESS" -n "$NAMESPACE" 2>&1)"; do
  i=$((i + 1))
  [ "$i" -ge 30 ] && { echo "$existing" >&2; exit 1; }
  sleep 2
done
for pair in $SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$ADDRESS" -n "$NAMESPACE" --name "$name" --type "$type"
    echo "search attribute $name ($type) created"
  fi
done
