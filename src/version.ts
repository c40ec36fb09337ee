/** Kept in step with package.json by test/version.test.ts (the single-file bundle has no package.json to read). */
export const VERSION = "0.1.0";
