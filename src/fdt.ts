// A flattened device tree (FDT, "DTB") writer: the blob format of the Devicetree Specification
// v0.4, chapter 5. Build a tree of `FdtNode`s, set properties with the value encoders below
// (section 2.2.4: <u32>, <u64>, <string>, <stringlist>, <phandle>, <prop-encoded-array>), then
// `serializeFdt` lays out
//
//   header (5.2) | memory reservation block (5.3) | structure block (5.4) | strings block (5.5)
//
// All multi-byte values are big-endian. The writer knows nothing about any particular board;
// src/board/virt-dtb.ts builds rvm's QEMU-virt tree with it.

import { RvmError } from "./errors.js";

/** A tree that cannot be written as a valid blob (bad name, duplicate node or property, ...). */
export class FdtError extends RvmError {
  constructor(message: string) {
    super(`device tree: ${message}`);
    this.name = "FdtError";
  }
}

// Section 5.2: the header.
export const FDT_MAGIC = 0xd00dfeed;
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;
export const FDT_HEADER_SIZE = 40;

// Section 5.4.1: structure block tokens.
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;

// ---------------------------------------------------------------------------------------------
// Property value encoders (section 2.2.4). Each returns the raw bytes of the value.
// ---------------------------------------------------------------------------------------------

const MAX_U32 = 0xffff_ffff;

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U32) {
    throw new FdtError(`${what} ${v} is not a 32-bit unsigned integer`);
  }
}

function checkU64(v: number | bigint, what: string): bigint {
  const b = typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (b < 0n || b > 0xffff_ffff_ffff_ffffn) {
    throw new FdtError(`${what} ${String(v)} is not a 64-bit unsigned integer`);
  }
  return b;
}

/** <prop-encoded-array> of 32-bit cells. */
export function cells(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => {
    checkU32(v, "cell");
    dv.setUint32(i * 4, v);
  });
  return out;
}

/** <u32>: one cell. */
export function u32(value: number): Uint8Array {
  return cells(value);
}

/** The two cells (high, low) of a 64-bit number, for building `reg` and `ranges` arrays. */
export function u64Cells(value: number | bigint): [number, number] {
  const b = checkU64(value, "64-bit value");
  return [Number(b >> 32n), Number(b & 0xffff_ffffn)];
}

/** <u64>, or several: each value as two cells, high cell first. */
export function u64(...values: (number | bigint)[]): Uint8Array {
  return cells(...values.flatMap((v) => u64Cells(v)));
}

/** <string>: UTF-8 (in practice ASCII) with a terminating NUL. */
export function string(value: string): Uint8Array {
  return stringList(value);
}

/** <stringlist>: NUL-terminated strings, concatenated (e.g. `compatible`). */
export function stringList(...values: string[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = values.map((s) => {
    if (s.includes("\0")) throw new FdtError(`string ${JSON.stringify(s)} contains a NUL`);
    return enc.encode(s);
  });
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length + 1; // the NUL is already zero
  }
  return out;
}

/** <phandle>: a reference to another node, one cell. */
export function phandle(value: number): Uint8Array {
  if (value === 0 || value === MAX_U32) throw new FdtError(`phandle ${value} is reserved`);
  return cells(value);
}

/** <empty>: a property whose presence is the information (`interrupt-controller`, `ranges`). */
export function empty(): Uint8Array {
  return new Uint8Array(0);
}

// ---------------------------------------------------------------------------------------------
// The tree
// ---------------------------------------------------------------------------------------------

export interface FdtProperty {
  readonly name: string;
  readonly value: Uint8Array;
}

// Section 2.2.1 (node names) and 2.2.4.1 (property names): the allowed characters.
const NODE_NAME = /^[0-9A-Za-z,._+-]{1,31}(@[0-9A-Za-z,._+-]+)?$/;
const PROP_NAME = /^[0-9A-Za-z,._+?#-]{1,31}$/;

/** One node: its name ("soc", "serial@10000000"), properties and children, in insertion order. */
export class FdtNode {
  readonly props: FdtProperty[] = [];
  readonly children: FdtNode[] = [];

  /** The root is the node with the empty name; every other name is checked against 2.2.1. */
  constructor(readonly name: string) {
    if (name !== "" && !NODE_NAME.test(name)) throw new FdtError(`bad node name ${JSON.stringify(name)}`);
  }

  /** Adds and returns a child node. */
  addNode(name: string): FdtNode {
    if (name === "") throw new FdtError(`only the root node may have an empty name`);
    if (this.children.some((c) => c.name === name)) {
      throw new FdtError(`node ${JSON.stringify(name)} already exists under ${JSON.stringify(this.name || "/")}`);
    }
    const child = new FdtNode(name);
    this.children.push(child);
    return child;
  }

  /** Sets a property to already-encoded bytes (use the encoders above). Replaces an old value. */
  set(name: string, value: Uint8Array): this {
    if (!PROP_NAME.test(name)) throw new FdtError(`bad property name ${JSON.stringify(name)}`);
    const i = this.props.findIndex((p) => p.name === name);
    const prop = { name, value };
    if (i >= 0) this.props[i] = prop;
    else this.props.push(prop);
    return this;
  }

  // Shorthands for the common value types.
  setU32(name: string, value: number): this {
    return this.set(name, u32(value));
  }
  setCells(name: string, ...values: number[]): this {
    return this.set(name, cells(...values));
  }
  setU64(name: string, ...values: (number | bigint)[]): this {
    return this.set(name, u64(...values));
  }
  setString(name: string, value: string): this {
    return this.set(name, string(value));
  }
  setStrings(name: string, ...values: string[]): this {
    return this.set(name, stringList(...values));
  }
  setEmpty(name: string): this {
    return this.set(name, empty());
  }

  /** The property's bytes, or undefined. */
  get(name: string): Uint8Array | undefined {
    return this.props.find((p) => p.name === name)?.value;
  }

  /** The child with exactly this name (including any unit address), or undefined. */
  child(name: string): FdtNode | undefined {
    return this.children.find((c) => c.name === name);
  }
}

/**
 * A tree plus its phandle numbering. Phandles are handed out 1, 2, 3, ... in the order nodes ask
 * for one, as QEMU's `qemu_fdt_alloc_phandle` does, and written as each node's `phandle` property.
 */
export class FdtTree {
  readonly root = new FdtNode("");
  private nextPhandle = 1;
  private readonly phandles = new Map<FdtNode, number>();

  /** The node's phandle, allocating one (and setting its `phandle` property) on first use. */
  phandleOf(node: FdtNode): number {
    let ph = this.phandles.get(node);
    if (ph === undefined) {
      ph = this.nextPhandle++;
      this.phandles.set(node, ph);
      node.set("phandle", phandle(ph));
    }
    return ph;
  }

  /** The node at an absolute path such as "/soc/serial@10000000", or undefined. */
  find(path: string): FdtNode | undefined {
    if (!path.startsWith("/")) return undefined;
    let node: FdtNode | undefined = this.root;
    for (const part of path.split("/").filter((p) => p !== "")) {
      node = node?.child(part);
    }
    return node;
  }
}

// ---------------------------------------------------------------------------------------------
// Serialisation
// ---------------------------------------------------------------------------------------------

export interface MemoryReservation {
  address: number | bigint;
  size: number | bigint;
}

export interface FdtWriteOptions {
  /** Entries for the memory reservation block (5.3); the terminating (0, 0) is added. */
  reservations?: MemoryReservation[];
  /** Header boot_cpuid_phys: the `reg` of the boot CPU (0 for rvm's one hart). */
  bootCpuidPhys?: number;
  /**
   * Free bytes to leave after the strings block, inside `totalsize`. Firmware that edits the
   * tree in place (OpenSBI adds reserved-memory nodes, U-Boot adds /chosen properties) grows it
   * into this room; by default it relies on the memory after the blob being free instead.
   */
  extraSpace?: number;
  /** Round `totalsize` up to a multiple of this (default 8, so the next blob can follow it). */
  align?: number;
}

/** A growing big-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(4096);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.reserve(4);
    this.dv.setUint32(this.length, v);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  /** `n` zero bytes. */
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  /** Zero bytes up to the next multiple of `n`. */
  align(n: number): void {
    this.zeros((n - (this.length % n)) % n);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/**
 * The strings block (5.5): each distinct property name once, NUL-terminated; properties refer
 * to their name by byte offset.
 */
class StringTable {
  private readonly offsets = new Map<string, number>();
  private readonly out = new ByteWriter();

  offsetOf(name: string): number {
    let off = this.offsets.get(name);
    if (off === undefined) {
      off = this.out.length;
      this.offsets.set(name, off);
      this.out.bytes(stringList(name));
    }
    return off;
  }
  bytes(): Uint8Array {
    return this.out.result();
  }
}

/** Writes the structure block (5.4) for `node` and its subtree, depth first. */
function writeNode(node: FdtNode, out: ByteWriter, strings: StringTable): void {
  out.u32(FDT_BEGIN_NODE);
  out.bytes(string(node.name)); // the root's name is the empty string: a single NUL
  out.align(4);
  for (const p of node.props) {
    out.u32(FDT_PROP);
    out.u32(p.value.length);
    out.u32(strings.offsetOf(p.name));
    out.bytes(p.value);
    out.align(4);
  }
  for (const c of node.children) writeNode(c, out, strings);
  out.u32(FDT_END_NODE);
}

/** The blob for a tree (or a bare root node): header, reservations, structure, strings. */
export function serializeFdt(tree: FdtTree | FdtNode, options: FdtWriteOptions = {}): Uint8Array {
  const root = tree instanceof FdtTree ? tree.root : tree;
  if (root.name !== "") throw new FdtError(`the root node must have an empty name, not ${JSON.stringify(root.name)}`);
  const align = options.align ?? 8;
  const extra = options.extraSpace ?? 0;
  if (!Number.isInteger(align) || align < 1) throw new FdtError(`bad alignment ${align}`);
  if (!Number.isInteger(extra) || extra < 0) throw new FdtError(`bad extra space ${extra}`);
  const bootCpu = options.bootCpuidPhys ?? 0;
  checkU32(bootCpu, "boot_cpuid_phys");

  const strings = new StringTable();
  const struct = new ByteWriter();
  writeNode(root, struct, strings);
  struct.u32(FDT_END);
  const structBytes = struct.result();
  const stringBytes = strings.bytes();

  // Layout: the reservation block must be 8-byte aligned (5.3), the structure block 4-byte
  // aligned (5.4); the header is 40 bytes, so both follow it directly.
  const out = new ByteWriter();
  for (let i = 0; i < FDT_HEADER_SIZE / 4; i++) out.u32(0); // header, filled in below
  out.align(8);
  const offMemRsvmap = out.length;
  for (const r of [...(options.reservations ?? []), { address: 0, size: 0 }]) {
    const [ah, al] = u64Cells(r.address);
    const [sh, sl] = u64Cells(r.size);
    out.u32(ah);
    out.u32(al);
    out.u32(sh);
    out.u32(sl);
  }
  const offDtStruct = out.length;
  out.bytes(structBytes);
  const offDtStrings = out.length;
  out.bytes(stringBytes);
  out.zeros(extra);
  out.align(align);

  const blob = out.result();
  const header = [
    FDT_MAGIC,
    blob.length, // totalsize
    offDtStruct,
    offDtStrings,
    offMemRsvmap,
    FDT_VERSION,
    FDT_LAST_COMP_VERSION,
    bootCpu,
    stringBytes.length, // size_dt_strings
    structBytes.length, // size_dt_struct
  ];
  const dv = new DataView(blob.buffer);
  header.forEach((v, i) => dv.setUint32(i * 4, v));
  return blob;
}
