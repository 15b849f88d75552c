// @size-limit/preset-small-lib ships no types: its default export is size-limit's list of
// plugin objects (esbuild + file), which the size-limit API accepts as its first argument.
declare module '@size-limit/preset-small-lib' {
  const preset: readonly object[]
  export default preset
}
