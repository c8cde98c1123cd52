import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["gen/**", "dist/**", "node_modules/**", "data/**", "results/**", ".scratch/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain JavaScript run by Node (CI helpers, tool configs, bin/): Node's globals, CommonJS where .cjs.
    files: ["**/*.mjs", "**/*.cjs", "bin/**/*.js"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", module: "writable", require: "readonly", URL: "readonly" },
    },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    // The core is deterministic: time and randomness arrive through tick() and an injected PRNG.
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-globals": ["error", "Date", "setTimeout", "setInterval", "setImmediate", "Promise", "process"],
      "no-restricted-properties": ["error", { object: "Math", property: "random", message: "use the injected PRNG" }],
    },
  },
);
