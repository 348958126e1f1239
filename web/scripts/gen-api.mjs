// Regenerates src/api/schema.d.ts from the OpenAPI document of the debug binary.
import { writeFileSync } from "node:fs";
import { startGateway } from "../e2e/gateway.mjs";
import { SCHEMA_FILE, typesFrom } from "./api-types.mjs";

const gateway = await startGateway();
try {
  writeFileSync(SCHEMA_FILE, await typesFrom(gateway.base));
  console.log(`wrote ${SCHEMA_FILE.pathname}`);
} finally {
  await gateway.stop();
}
