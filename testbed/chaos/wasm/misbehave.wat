;; A proxy-wasm HTTP filter (ABI 0.2.1) that misbehaves on purpose, in plain WAT so a reader
;; can audit every instruction. The first byte of its plugin configuration picks the behaviour:
;;   t  trap    `unreachable` on every request's headers
;;   l  loop    an endless loop on every request's headers (Wasm has no time limit)
;;   m  memory  grow linear memory by 16 MiB on every request and touch it, never free
;;   d  deny    answer every request 403 itself
;;   anything else: pass requests through
;; Built with `wat2wasm` at run time (testbed/chaos/wasm_fault.py).
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $local_reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))   ;; bump allocator for what the host hands us
  (global $mode (mut i32) (i32.const 0))
  (data (i32.const 1024) "testbed misbehaving filter configured")  ;; 37 bytes
  (data (i32.const 1088) "denied by a wasm extension\n")            ;; 27 bytes
  (data (i32.const 1120) "wasm_deny")                               ;; 9 bytes

  (func (export "proxy_abi_version_0_2_1"))

  (func $malloc (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $n) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then unreachable))))
    (local.get $p))

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))

  ;; read the plugin configuration (buffer type 7); the host writes its address to [2048]
  ;; and its length to [2052]
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0))
      (then
        (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 2048) (i32.const 2052)))
        (global.set $mode (i32.load8_u (i32.load (i32.const 2048))))))
    (drop (call $log (i32.const 2) (i32.const 1024) (i32.const 37)))
    (i32.const 1))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $p i32) (local $i i32)
    (if (i32.eq (global.get $mode) (i32.const 116)) (then unreachable))        ;; 't'
    (if (i32.eq (global.get $mode) (i32.const 108)) (then (loop $forever (br $forever))))  ;; 'l'
    (if (i32.eq (global.get $mode) (i32.const 109))                            ;; 'm'
      (then
        (local.set $p (memory.grow (i32.const 256)))                           ;; 256 pages = 16 MiB
        (if (i32.eq (local.get $p) (i32.const -1)) (then unreachable))
        (local.set $p (i32.mul (local.get $p) (i32.const 65536)))
        (local.set $i (i32.const 0))
        (loop $touch                                                           ;; one byte per 4 KiB page
          (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.const 1))
          (local.set $i (i32.add (local.get $i) (i32.const 4096)))
          (br_if $touch (i32.lt_u (local.get $i) (i32.const 16777216))))))
    (if (i32.eq (global.get $mode) (i32.const 100))                            ;; 'd'
      (then
        (drop (call $local_reply (i32.const 403) (i32.const 1120) (i32.const 9)
                 (i32.const 1088) (i32.const 27) (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))                                               ;; StopIteration
    (i32.const 0))                                                             ;; Continue

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)
