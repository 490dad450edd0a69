;; Experiment (bench/experiments/wasm-strings/run.mjs): string ends for a whole JSON buffer, 16 bytes per step.
(module
  (memory (export "mem") 1)
  ;; strings(start, end, out) -> entries written.
  ;; Bytes [start, end) hold JSON; bytes end..end+15 must be readable (slack). For every string (a '"' outside a
  ;; string up to the next unescaped '"') one i32 is written at out: the offset (from start) of its closing quote,
  ;; with bit 31 set when the string holds a backslash or a byte < 0x20. A string still open at end gets no entry.
  (func (export "strings") (param $start i32) (param $end i32) (param $out i32) (result i32)
    (local $p i32) (local $mask i32) (local $bit i32) (local $pos i32) (local $c i32)
    (local $in i32) (local $flag i32) (local $skip i32) (local $o i32) (local $v v128)
    (local.set $p (local.get $start))
    (local.set $o (local.get $out))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $mask
          (i8x16.bitmask
            (v128.or
              (v128.or
                (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x22)))
                (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x5c))))
              (i8x16.lt_u (local.get $v) (i8x16.splat (i32.const 0x20))))))
        ;; an escape at the end of the previous block skips this block's first byte
        (if (local.get $skip)
          (then
            (local.set $mask (i32.and (local.get $mask) (i32.const 0xfffe)))
            (local.set $skip (i32.const 0))))
        ;; bytes past end do not count
        (if (i32.gt_u (i32.add (local.get $p) (i32.const 16)) (local.get $end))
          (then
            (local.set $mask
              (i32.and (local.get $mask)
                (i32.sub (i32.shl (i32.const 1) (i32.sub (local.get $end) (local.get $p))) (i32.const 1))))))
        (block $bits_done
          (loop $bits
            (br_if $bits_done (i32.eqz (local.get $mask)))
            (local.set $bit (i32.ctz (local.get $mask)))
            (local.set $mask (i32.and (local.get $mask) (i32.sub (local.get $mask) (i32.const 1))))
            (local.set $pos (i32.add (local.get $p) (local.get $bit)))
            (local.set $c (i32.load8_u (local.get $pos)))
            (if (i32.eqz (local.get $in))
              (then
                (if (i32.eq (local.get $c) (i32.const 0x22))
                  (then
                    (local.set $in (i32.const 1))
                    (local.set $flag (i32.const 0))))
                (br $bits)))
            (if (i32.eq (local.get $c) (i32.const 0x22))
              (then
                (i32.store (local.get $o)
                  (i32.or (i32.sub (local.get $pos) (local.get $start)) (i32.shl (local.get $flag) (i32.const 31))))
                (local.set $o (i32.add (local.get $o) (i32.const 4)))
                (local.set $in (i32.const 0))
                (br $bits)))
            (local.set $flag (i32.const 1))
            (if (i32.eq (local.get $c) (i32.const 0x5c))
              (then
                (if (i32.eq (local.get $bit) (i32.const 15))
                  (then (local.set $skip (i32.const 1)))
                  (else
                    (local.set $mask
                      (i32.and (local.get $mask)
                        (i32.xor (i32.shl (i32.const 1) (i32.add (local.get $bit) (i32.const 1))) (i32.const -1))))))))
            (br $bits)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $blocks)))
    (i32.shr_u (i32.sub (local.get $o) (local.get $out)) (i32.const 2)))
)
