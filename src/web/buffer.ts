// Node's Buffer for the browser build (the `buffer` package): the snapshot code reads and writes
// its binary formats with Buffer's methods. scripts/build-web.js injects it where Buffer is used.
export { Buffer } from "buffer";
