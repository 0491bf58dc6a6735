// Vite's `?url` imports (the tf.js .wasm binaries): the URL the built file is served at.
declare module '*.wasm?url' {
  const url: string;
  export default url;
}
