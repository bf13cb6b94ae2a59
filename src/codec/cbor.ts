/** The canonical CBOR value encoding is the core's (src/core/encoding.ts): signatures, digests and
 * records are defined over it. The shell's codec builds on it. */
export * from '../core/encoding.ts';
