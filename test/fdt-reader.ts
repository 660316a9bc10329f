// A small, strict reader of flattened device tree blobs (Devicetree Specification v0.4, chapter 5),
// written independently of src/fdt.ts so the tests check the writer against the specification
// rather than against itself. It throws on anything a conforming blob must not contain.

export interface ParsedNode {
  name: string;
  path: string;
  props: Map<string, Uint8Array>;
  children: ParsedNode[];
}

export interface ParsedFdt {
  header: {
    magic: number;
    totalsize: number;
    offDtStruct: number;
    offDtStrings: number;
    offMemRsvmap: number;
    version: number;
    lastCompVersion: number;
    bootCpuidPhys: number;
    sizeDtStrings: number;
    sizeDtStruct: number;
  };
  reservations: { address: bigint; size: bigint }[];
  /** The strings block, split at its NULs, in order. */
  strings: string[];
  root: ParsedNode;
  /** Every node by absolute path ("/", "/soc", "/soc/serial@10000000"). */
  nodes: Map<string, ParsedNode>;
}

function fail(msg: string): never {
  throw new Error(`bad FDT: ${msg}`);
}

export function parseFdt(blob: Uint8Array): ParsedFdt {
  if (blob.length < 40) fail("shorter than the header");
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const w = (off: number): number => dv.getUint32(off);
  const header = {
    magic: w(0),
    totalsize: w(4),
    offDtStruct: w(8),
    offDtStrings: w(12),
    offMemRsvmap: w(16),
    version: w(20),
    lastCompVersion: w(24),
    bootCpuidPhys: w(28),
    sizeDtStrings: w(32),
    sizeDtStruct: w(36),
  };
  if (header.magic !== 0xd00dfeed) fail(`magic 0x${header.magic.toString(16)}`);
  if (header.totalsize > blob.length) fail("totalsize beyond the buffer");
  if (header.offMemRsvmap % 8 !== 0) fail("reservation block not 8-byte aligned");
  if (header.offDtStruct % 4 !== 0) fail("structure block not 4-byte aligned");
  if (header.offDtStruct + header.sizeDtStruct > header.totalsize) fail("structure block beyond totalsize");
  if (header.offDtStrings + header.sizeDtStrings > header.totalsize) fail("strings block beyond totalsize");

  const reservations: ParsedFdt["reservations"] = [];
  for (let off = header.offMemRsvmap; ; off += 16) {
    if (off + 16 > header.totalsize) fail("unterminated reservation block");
    const address = dv.getBigUint64(off);
    const size = dv.getBigUint64(off + 8);
    if (address === 0n && size === 0n) break;
    reservations.push({ address, size });
  }

  const strBlock = blob.subarray(header.offDtStrings, header.offDtStrings + header.sizeDtStrings);
  if (strBlock.length > 0 && strBlock[strBlock.length - 1] !== 0) fail("strings block does not end in NUL");
  const dec = new TextDecoder();
  const strings = strBlock.length ? dec.decode(strBlock.subarray(0, -1)).split("\0") : [];
  const stringAt = (off: number): string => {
    if (off >= strBlock.length) fail(`name offset ${off} outside the strings block`);
    if (off > 0 && strBlock[off - 1] !== 0) fail(`name offset ${off} is inside a string`);
    const end = strBlock.indexOf(0, off);
    return dec.decode(strBlock.subarray(off, end));
  };

  const end = header.offDtStruct + header.sizeDtStruct;
  let pos = header.offDtStruct;
  const token = (): number => {
    if (pos + 4 > end) fail("structure block ends without FDT_END");
    const t = w(pos);
    pos += 4;
    return t;
  };
  const cstring = (): string => {
    const nul = blob.indexOf(0, pos);
    if (nul < 0 || nul >= end) fail("unterminated node name");
    const s = dec.decode(blob.subarray(pos, nul));
    pos = (nul + 1 + 3) & ~3;
    return s;
  };

  const nodes = new Map<string, ParsedNode>();
  const readNode = (parentPath: string | null): ParsedNode => {
    const name = cstring();
    const path = parentPath === null ? "/" : parentPath === "/" ? `/${name}` : `${parentPath}/${name}`;
    if (parentPath === null && name !== "") fail("root node has a name");
    if (nodes.has(path)) fail(`duplicate node ${path}`);
    const node: ParsedNode = { name, path, props: new Map(), children: [] };
    nodes.set(path, node);
    for (;;) {
      const t = token();
      if (t === 0x3) {
        const len = token();
        const nameoff = token();
        const prop = stringAt(nameoff);
        if (node.children.length) fail(`property ${prop} after a subnode in ${path}`);
        if (node.props.has(prop)) fail(`duplicate property ${prop} in ${path}`);
        if (pos + len > end) fail(`property ${prop} runs past the structure block`);
        node.props.set(prop, blob.slice(pos, pos + len));
        pos = (pos + len + 3) & ~3;
      } else if (t === 0x1) {
        node.children.push(readNode(path));
      } else if (t === 0x2) {
        return node;
      } else if (t === 0x4) {
        // FDT_NOP
      } else {
        fail(`unexpected token 0x${t.toString(16)} at 0x${(pos - 4).toString(16)}`);
      }
    }
  };
  while (w(pos) === 0x4) pos += 4;
  if (token() !== 0x1) fail("structure block does not start with FDT_BEGIN_NODE");
  const root = readNode(null);
  while (token() !== 0x9) {
    if (w(pos - 4) !== 0x4) fail("content after the root node");
  }
  if (pos !== end) fail("size_dt_struct does not end at FDT_END");
  return { header, reservations, strings, root, nodes };
}

/** Property value helpers. */
export function cellsOf(v: Uint8Array | undefined): number[] {
  if (!v) throw new Error("property missing");
  if (v.length % 4) throw new Error(`property of ${v.length} bytes is not a cell array`);
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  return Array.from({ length: v.length / 4 }, (_, i) => dv.getUint32(i * 4));
}

export function stringsOf(v: Uint8Array | undefined): string[] {
  if (!v) throw new Error("property missing");
  if (v.length === 0 || v[v.length - 1] !== 0) throw new Error("not a NUL-terminated string list");
  return new TextDecoder().decode(v.subarray(0, -1)).split("\0");
}
