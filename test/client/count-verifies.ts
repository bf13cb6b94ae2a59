/** Test helper: how many signature checks really ran (NodeVerifier.verify calls) while `body` ran. */
import { NodeVerifier } from '../../src/crypto/node.ts';

export async function countVerifies(body: () => Promise<void>): Promise<number> {
  const original = NodeVerifier.prototype.verify;
  let calls = 0;
  NodeVerifier.prototype.verify = function (this: NodeVerifier, key, data, sig) {
    calls++;
    return original.call(this, key, data, sig);
  };
  try {
    await body();
  } finally {
    NodeVerifier.prototype.verify = original;
  }
  return calls;
}
