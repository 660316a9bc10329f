// The monitor's `info mem` and `info tlb`.
//
// info mem walks the selected hart's page table from satp exactly as QEMU's RISC-V monitor does
// (target/riscv/monitor.c): leaves in virtual address order, neighbours with the same attribute
// bits and contiguous virtual and physical addresses merged into one range, attributes
// r w x u g a d. info tlb (QEMU has none for RISC-V) lists what each hart's software TLBs
// (assembly/tlb.ts) hold now: virtual page, the physical page it maps, which of the fetch, load
// and store TLBs have it (x, r, w) and the privilege the entry was filled for.

const PTE_V = 1n, PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_U = 16n, PTE_G = 32n, PTE_A = 64n, PTE_D = 128n;

const hex16 = (v: bigint) => BigInt.asUintN(64, v).toString(16).padStart(16, "0");

/** `info mem` for `satp`; `readPte` reads 8 bytes of guest-physical memory. */
export function infoMem(satp: bigint, readPte: (pa: bigint) => bigint): string {
  const mode = Number(satp >> 60n);
  if (mode === 0) return "No translation or protection\n";
  const levels = mode === 8 ? 3 : mode === 9 ? 4 : mode === 10 ? 5 : 0;
  if (levels === 0) return "No translation or protection\n";
  const vaBits = 12 + 9 * levels;
  const out: string[] = [
    "vaddr            paddr            size             attr\n",
    "---------------- ---------------- ---------------- -------\n",
  ];
  const canonical = (va: bigint) => (va & (1n << BigInt(vaBits - 1)) ? va | (~0n << BigInt(vaBits)) : va);
  const print = (vaddr: bigint, paddr: bigint, size: bigint, attr: bigint) => {
    if (vaddr >= 1n << BigInt(vaBits) || size === 0n || size < 0n) return;
    const a = (bit: bigint, c: string) => (attr & bit ? c : "-");
    out.push(`${hex16(canonical(vaddr))} ${hex16(paddr)} ${hex16(size)} ${a(PTE_R, "r")}${a(PTE_W, "w")}${a(PTE_X, "x")}${a(PTE_U, "u")}${a(PTE_G, "g")}${a(PTE_A, "a")}${a(PTE_D, "d")}\n`);
  };
  // The walk's state, carried across levels as QEMU's pointers are.
  let vbase = -1n, pbase = -1n, lastPaddr = -1n, lastSize = 0n, lastAttr = 0n;
  const walk = (base: bigint, start: bigint, level: number) => {
    let lastStart = -1n;
    const pgsize = 1n << BigInt(12 + level * 9);
    for (let idx = 0; idx < 512; idx++) {
      const pte = readPte(base + BigInt(idx * 8));
      const paddr = (pte >> 10n) << 12n & ((1n << 56n) - 1n);
      const attr = pte & 0xffn;
      if (attr & PTE_V) {
        if (attr & (PTE_R | PTE_W | PTE_X)) {
          if (lastAttr !== attr || lastPaddr + lastSize !== paddr || lastStart + lastSize !== start) {
            print(vbase, pbase, lastPaddr + lastSize - pbase, lastAttr);
            vbase = start;
            pbase = paddr;
            lastAttr = attr;
          }
          lastStart = start;
          lastPaddr = paddr;
          lastSize = pgsize;
        } else if (level > 0) {
          walk(paddr, start, level - 1);
        }
      }
      start += pgsize;
    }
  };
  walk((satp & 0xfffffffffffn) << 12n, 0n, levels - 1);
  print(vbase, pbase, lastPaddr + lastSize - pbase, lastAttr);
  return out.join("");
}

/** One hart's TLBs as the core keeps them: three tables of `entries` x [tag u64][host u32][pad]. */
export interface TlbView {
  hart: number;
  tables: DataView;
  entries: number;
  /** The guest-physical address of a host (wasm) page address, or undefined. */
  physical(host: number): bigint | undefined;
}

/** `info tlb`: every hart's valid entries. */
export function infoTlb(views: TlbView[]): string {
  const out: string[] = [];
  const kinds = ["x", "r", "w"]; // fetch, load, store
  for (const v of views) {
    const pages = new Map<string, { va: bigint; pa: bigint; perms: Set<string>; priv: number; flags: string }>();
    for (let t = 0; t < 3; t++) {
      for (let i = 0; i < v.entries; i++) {
        const off = (t * v.entries + i) * 16;
        const tag = v.tables.getBigUint64(off, true);
        if (tag === 0xffffffffffffffffn) continue;
        const vpn = tag & ((1n << 52n) - 1n);
        const ctx = Number(tag >> 52n);
        const pa = v.physical(v.tables.getUint32(off + 8, true));
        if (pa === undefined) continue;
        // A virtual page number is va >> 12 of a 64-bit address: sign-extend from bit 51.
        const va = BigInt.asUintN(64, BigInt.asIntN(52, vpn) << 12n);
        const priv = ctx & 3;
        const flags = (ctx & 4 ? "sum " : "") + (t === 1 && ctx & 8 ? "mxr" : "");
        const key = `${va}:${priv}`;
        const e = pages.get(key) ?? { va, pa, perms: new Set<string>(), priv, flags: "" };
        e.perms.add(kinds[t]);
        if (flags && !e.flags.includes(flags.trim())) e.flags = (e.flags + " " + flags).trim();
        pages.set(key, e);
      }
    }
    out.push(`CPU#${v.hart}: ${pages.size} pages (fetch, load and store TLBs: ${v.entries} entries each)\n`);
    if (pages.size === 0) continue;
    out.push("vaddr            paddr            attr priv\n");
    out.push("---------------- ---------------- ---- ----\n");
    const rows = [...pages.values()].sort((a, b) => (a.va < b.va ? -1 : a.va > b.va ? 1 : a.priv - b.priv));
    for (const e of rows) {
      const attr = ["r", "w", "x"].map((k) => (e.perms.has(k) ? k : "-")).join("");
      out.push(`${hex16(e.va)} ${hex16(e.pa)} ${attr}  ${"USHM"[e.priv]}${e.flags ? "    " + e.flags : ""}\n`);
    }
  }
  return out.join("");
}
