#!/usr/bin/env bash
# Regenerates dispatch-data.schema.json from discord-api-types (see README.md). Needs node and npm
# (npm registry only); the tests never run this, they read the committed schema.
#   bash tests/contract/gateway_schemas/generate.sh
set -euo pipefail
# discord-api-types: the types; ts-json-schema-generator 2.4.0: the last release that runs on
# Node 20 (2.5 and later need Node 22), with the TypeScript 5 it depends on.
TYPES_VERSION="${TYPES_VERSION:-0.38.57}"
GENERATOR_VERSION="2.4.0"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent \
  "discord-api-types@$TYPES_VERSION" "ts-json-schema-generator@$GENERATOR_VERSION"
cp "$here/dispatch.ts" .
printf '%s\n' '{"compilerOptions": {"strict": true, "module": "node16",' \
  '"moduleResolution": "node16", "target": "es2022", "skipLibCheck": true}}' > tsconfig.json
# --additional-properties: Discord adds fields before the types know them and clients must ignore
# unknown fields, so an object may carry more than its type names; what it names is checked.
npx ts-json-schema-generator --path dispatch.ts --type DispatchData --tsconfig tsconfig.json \
  --additional-properties --jsDoc none --out generated.json
cp node_modules/discord-api-types/LICENSE "$here/LICENSE.discord-api-types"
python3 "$here/postprocess.py" generated.json "$here/dispatch-data.schema.json" \
  --types-version "$(node -p 'require("./node_modules/discord-api-types/package.json").version')" \
  --generator-version "$GENERATOR_VERSION"
