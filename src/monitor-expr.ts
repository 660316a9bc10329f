// Expressions in monitor commands (`p $pc + 4`, `x/4i $sp - 16`), with QEMU HMP's grammar
// (monitor/hmp.c): numbers in C notation (0x.., 0.., decimal), 'c' character literals,
// $register, unary + - ~, parentheses, and three precedence levels, lowest first:
//   sum:   logic { (+ | -) logic }
//   logic: prod  { (& | '|' | ^) prod }
//   prod:  unary { (* | / | %) unary }
// Arithmetic is 64-bit unsigned, as QEMU's.

export class ExprError extends Error {}

const U64 = (v: bigint) => BigInt.asUintN(64, v);

/** Evaluates `text`; `register` returns a register's value by name (without the $), or undefined. */
export function evaluate(text: string, register: (name: string) => bigint | undefined): bigint {
  let pos = 0;
  const peek = () => {
    while (pos < text.length && /\s/.test(text[pos])) pos++;
    return text[pos] ?? "";
  };
  const unary = (): bigint => {
    const c = peek();
    if (c === "+") { pos++; return unary(); }
    if (c === "-") { pos++; return U64(-unary()); }
    if (c === "~") { pos++; return U64(~unary()); }
    if (c === "(") {
      pos++;
      const v = sum();
      if (peek() !== ")") throw new ExprError("')' expected");
      pos++;
      return v;
    }
    if (c === "'") {
      const m = /^'(\\?.)'/.exec(text.slice(pos));
      if (!m) throw new ExprError("invalid char in expression");
      pos += m[0].length;
      const ch = m[1].length === 2 ? { n: "\n", t: "\t", r: "\r", "0": "\0" }[m[1][1]] ?? m[1][1] : m[1];
      return BigInt(ch.charCodeAt(0));
    }
    if (c === "$") {
      const m = /^\$([A-Za-z_][A-Za-z0-9_.]*)/.exec(text.slice(pos));
      if (!m) throw new ExprError("unknown register");
      pos += m[0].length;
      const v = register(m[1].toLowerCase());
      if (v === undefined) throw new ExprError("unknown register");
      return U64(v);
    }
    if (c === "") throw new ExprError("unexpected end of expression");
    const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(text.slice(pos));
    if (!m) throw new ExprError("invalid char in expression");
    pos += m[0].length;
    const s = m[1];
    const v = /^0[xX]/.test(s) ? BigInt(s) : s.length > 1 && s[0] === "0" ? BigInt("0o" + s.slice(1)) : BigInt(s);
    return U64(v);
  };
  const prod = (): bigint => {
    let v = unary();
    for (;;) {
      const op = peek();
      if (op !== "*" && op !== "/" && op !== "%") return v;
      pos++;
      const r = unary();
      if (op === "*") v = U64(v * r);
      else {
        if (r === 0n) throw new ExprError("division by zero");
        v = op === "/" ? v / r : v % r;
      }
    }
  };
  const logic = (): bigint => {
    let v = prod();
    for (;;) {
      const op = peek();
      if (op !== "&" && op !== "|" && op !== "^") return v;
      pos++;
      const r = prod();
      v = op === "&" ? v & r : op === "|" ? v | r : v ^ r;
    }
  };
  const sum = (): bigint => {
    let v = logic();
    for (;;) {
      const op = peek();
      if (op !== "+" && op !== "-") return v;
      pos++;
      const r = logic();
      v = U64(op === "+" ? v + r : v - r);
    }
  };
  const v = sum();
  if (peek() !== "") throw new ExprError("invalid char in expression");
  return v;
}
