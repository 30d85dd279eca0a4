// The public id of one of our minted tokens, read from its value (tks_<tag>_<rid>_...): the
// "your devices" page marks the token in use with it. Registered (external) values have no
// readable id: null.
const MINTED = /^tks_([0-9a-f]{16})_([0-9a-f]{16})_[a-z2-7]{59}$/;

export function mintedTokenId(value) {
  const match = MINTED.exec(value);
  if (match == null) return null;
  const [tag, rid] = [match[1], match[2]];
  const [a, b, c] = [tag.slice(0, 8), tag.slice(8, 12), tag.slice(12)];
  return `${a}-${b}-${c}-${rid.slice(0, 4)}-${rid.slice(4)}`;
}
