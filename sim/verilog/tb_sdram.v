// tb_sdram: the generated LiteDRAM controller (sdram_ulx3s, sdtforge.boards.litedram) driving
// the chip model (sdram_chip.v) through the ECP5 stand-ins (ecp5_prims.v).
// 1. N pipelined full-word writes at pseudo-random addresses;
// 2. a byte-masked overwrite (low byte of each 16-bit lane) of every 4th of those words;
// 3. 40 us idle, several refresh intervals; SINGLE reads on their own (latency);
// 4. N pipelined reads of the random addresses, checked against what was written;
// 5. M sequential writes, then M pipelined sequential reads, checked and timed.
// The last lines report the chip model's command counts and errors, the mismatches, and
// "TEST PASSED" or "TEST FAILED". Handshakes are sampled mid-cycle, so the result does not
// depend on the simulator's ordering of same-time events. `define HALFRATE for rate 1:2.
// Parameters: DW, AW (user port), COL_BITS (chip), CLK_PERIOD, PS_DELAY (SDRAM clock lag),
// T_RT (extra round trip of read data). +vcd dumps tb_sdram.vcd.
`timescale 1ns / 1ps
module tb;
    parameter real CLK_PERIOD = 20.0;   // 50 MHz
    parameter real PS_DELAY   = 5.0;    // SDRAM clock lag behind clk (90 deg at 50 MHz, as LiteX ulx3s target)
    // Extra delay of read data seen by the FPGA's input register: SDRAM clock output path
    // (ODDR + pad, ~5 ns) + board + input buffer.  Command and clock outputs have equal
    // delays, so only the read-data round trip matters; it is added to the chip's tAC/tOH.
    parameter real T_RT       = 5.0;
    parameter N = 2048;
    parameter AW = 24;          // user port word address width (23 at 1:2 with 32-bit words)
    parameter DW = 16;          // user port data width (32 at 1:2)
    parameter COL_BITS = 9;

    // clk: controller/user clock.  1:1: the SDRAM clock is clk.  1:2 (`define HALFRATE):
    // the PHY and SDRAM run on clk2x (rising edges aligned with clk).
    // clk_ps: the SDRAM-frequency clock delayed by PS_DELAY, feeds the core's ODDR.
    reg clk = 0, clk2x = 0, clk_ps = 0, rst = 1;
`ifdef HALFRATE
    // Both clocks from delays (not clk derived from clk2x): no delta-cycle race between them.
    // One process drives both clocks so that coincident rising edges (t = 5, 25, ...) change
    // in the same time step for every simulator (two independent processes race in Verilator).
    initial forever begin
        #(CLK_PERIOD/4); {clk2x, clk} = 2'b11;
        #(CLK_PERIOD/4); clk2x = 0;
        #(CLK_PERIOD/4); clk2x = 1;
        #(CLK_PERIOD/4); {clk2x, clk} = 2'b00;
    end
    always @(clk2x) clk_ps <= #(PS_DELAY) clk2x;
`else
    always #(CLK_PERIOD/2) clk = ~clk;
    always @(clk) clk_ps <= #(PS_DELAY) clk;
`endif

    wire [12:0] sdram_a; wire [1:0] sdram_ba, sdram_dm; wire [15:0] sdram_dq;
    wire sdram_cas_n, sdram_cke, sdram_clk, sdram_cs_n, sdram_ras_n, sdram_we_n;
    wire init_done, cmd_ready, wdata_ready, rdata_valid;
    wire [DW-1:0] rdata;
    reg  cmd_valid = 0, cmd_we = 0;
    reg  [AW-1:0] cmd_addr = 0;
    reg  [DW-1:0] wdata = 0;
    reg  [DW/8-1:0] wdata_we = {DW/8{1'b1}};

    sdram_ulx3s dut (
        .clk(clk), .clk_sdram(clk_ps), .rst(rst), .init_done(init_done),
`ifdef HALFRATE
        .clk2x(clk2x),
`endif
        .sdram_a(sdram_a), .sdram_ba(sdram_ba), .sdram_cas_n(sdram_cas_n), .sdram_cke(sdram_cke),
        .sdram_clk(sdram_clk), .sdram_cs_n(sdram_cs_n), .sdram_dm(sdram_dm), .sdram_dq(sdram_dq),
        .sdram_ras_n(sdram_ras_n), .sdram_we_n(sdram_we_n),
        .user_cmd_addr(cmd_addr), .user_cmd_ready(cmd_ready), .user_cmd_valid(cmd_valid),
        .user_cmd_we(cmd_we), .user_rdata_data(rdata), .user_rdata_ready(1'b1),
        .user_rdata_valid(rdata_valid), .user_wdata_data(wdata), .user_wdata_ready(wdata_ready),
        .user_wdata_valid(1'b1), .user_wdata_we(wdata_we)
    );

    sdram_chip #(.COL_BITS(COL_BITS), .T_AC(5.4 + T_RT), .T_OH(2.7 + T_RT)) chip (
        .clk(sdram_clk), .cke(sdram_cke), .cs_n(sdram_cs_n), .ras_n(sdram_ras_n),
        .cas_n(sdram_cas_n), .we_n(sdram_we_n), .ba(sdram_ba), .a(sdram_a), .dqm(sdram_dm),
        .dq(sdram_dq)
    );

    // Address/data of transaction i (multiplication by an odd constant is a bijection mod 2^AW).
    function [AW-1:0] addr_of(input integer i); addr_of = i * 24'h9E3779 + 24'h1234; endfunction
    function [15:0]   d16(input integer i); d16 = (i * 16'h6F4B) ^ 16'hA5C3; endfunction
    function [DW-1:0] data_of(input integer i);
        integer j;
        for (j = 0; j < DW/16; j = j + 1) data_of[16*j +: 16] = d16(i * 4 + j);
    endfunction
    // Every 4th word gets the low byte of each 16-bit lane overwritten (byte-masked write).
    function [DW-1:0] masked_of(input integer i);
        integer j;
        reg [DW-1:0] d;
        begin
            d = data_of(i);
            for (j = 0; j < DW/16; j = j + 1) masked_of[16*j +: 16] = {8'hEE, ~d[16*j +: 8]};
        end
    endfunction
    function [DW-1:0] expect_of(input integer i);
        integer j;
        reg [DW-1:0] d;
        begin
            d = data_of(i);
            expect_of = d;
            if (i % 4 == 0)
                for (j = 0; j < DW/16; j = j + 1) expect_of[16*j +: 8] = ~d[16*j +: 8];
        end
    endfunction

    // Write data queue: the controller pulls data (wdata_ready) in command order.
    reg [DW-1:0]   wq_data [0:N-1];
    reg [DW/8-1:0] wq_we   [0:N-1];
    integer wq_head = 0, wq_tail = 0;
    // wdata/wdata_we always show the queue head (no @* over the arrays: slow in Icarus).
    always @(posedge clk) begin
        if (wdata_ready) wq_head = wq_head + 1;
        wdata    <= wq_data[wq_head % N];
        wdata_we <= wq_we[wq_head % N];
    end

    // Read expectations.
    integer rq_head = 0, rq_tail = 0, mismatches = 0, reads_ok = 0;
    integer rq_idx [0:N-1];
    parameter M = 2048;
    parameter SEQ_BASE = 24'h300000;
    reg [DW-1:0] sq_exp [0:N-1];
    integer sq_head = 0, sq_tail = 0, seq_bad = 0;
    real ts0, ts1, lat_min, lat_max;
    parameter SINGLE = 4;
    // One checker process: random-phase reads first (rq queue), then sequential ones (sq).
    always @(posedge clk) if (rdata_valid && rq_head == rq_tail) begin
        if (rdata !== sq_exp[sq_head % N]) seq_bad = seq_bad + 1;
        sq_head = sq_head + 1;
    end else if (rdata_valid) begin
        if (rdata !== expect_of(rq_idx[rq_head % N])) begin
            mismatches = mismatches + 1;
            if (mismatches < 10)
                $display("MISMATCH i=%0d addr=%h got=%h exp=%h", rq_idx[rq_head % N],
                         addr_of(rq_idx[rq_head % N]), rdata, expect_of(rq_idx[rq_head % N]));
        end else reads_ok = reads_ok + 1;
        rq_head = rq_head + 1;
    end

    integer i, t0, t1;
    real tw0, tw1, tr0, tr1;
    // Command handshake, simulator-independent: inputs change and cmd_ready is sampled in
    // the middle of the clock cycle (after the falling edge), the transfer happens at the
    // following rising edge.  Consecutive issue() calls keep cmd_valid high (back-to-back).
    task issue(input we, input [AW-1:0] addr);
        begin
            @(negedge clk);
            cmd_valid = 1; cmd_we = we; cmd_addr = addr;
            #(CLK_PERIOD/8);
            while (!cmd_ready) begin
                @(negedge clk);
                #(CLK_PERIOD/8);
            end
            @(posedge clk);
        end
    endtask
    task idle;
        begin
            @(negedge clk);
            cmd_valid = 0;
        end
    endtask

    initial begin
        if ($test$plusargs("vcd")) begin $dumpfile("tb_sdram.vcd"); $dumpvars(0, tb); end
        repeat (10) @(posedge clk);
        @(negedge clk);
        rst = 0;
        wait (init_done);
        $display("init_done at %0.1f ns", $realtime);
        @(posedge clk);
        // Phase 1: full-word writes.
        tw0 = $realtime;
        for (i = 0; i < N; i = i + 1) begin
            wq_data[wq_tail % N] = data_of(i); wq_we[wq_tail % N] = {DW/8{1'b1}};
            wq_tail = wq_tail + 1;
            issue(1, addr_of(i));
        end
        idle;
        wait (wq_head == wq_tail);
        tw1 = $realtime;
        $display("phase 1 (writes) done at %0.1f ns", $realtime);
        // Phase 2: low-byte-only overwrites of every 4th word.
        for (i = 0; i < N; i = i + 4) begin
            wq_data[wq_tail % N] = masked_of(i); wq_we[wq_tail % N] = {DW/16{2'b01}};
            wq_tail = wq_tail + 1;
            issue(1, addr_of(i));
        end
        idle;
        wait (wq_head == wq_tail);
        // Idle across several refresh intervals.
        #(40000);
        @(posedge clk);  // re-align to the clock (avoid a same-time race with issue())
        $display("phase 2 (masked writes + idle) done at %0.1f ns", $realtime);
        // SINGLE reads on their own: cycles from the edge that takes the command to the edge
        // that takes the data (rows closed by auto-precharge; a refresh may delay one).
        lat_min = 1.0e9; lat_max = 0.0;
        for (i = 1; i <= SINGLE; i = i + 1) begin
            rq_idx[rq_tail % N] = i; rq_tail = rq_tail + 1;
            issue(0, addr_of(i));
            ts0 = $realtime;
            idle;
            wait (rq_head == rq_tail);
            ts1 = ($realtime - ts0) / CLK_PERIOD;
            if (ts1 < lat_min) lat_min = ts1;
            if (ts1 > lat_max) lat_max = ts1;
            @(posedge clk);
        end
        $display("single reads: %0d, %0.0f to %0.0f cycles from command to data",
                 SINGLE, lat_min, lat_max);
        // Phase 3: pipelined reads.
        tr0 = $realtime;
        for (i = 0; i < N; i = i + 1) begin
            rq_idx[rq_tail % N] = i; rq_tail = rq_tail + 1;
            issue(0, addr_of(i));
        end
        idle;
        wait (rq_head == rq_tail);
        tr1 = $realtime;
        // Phase 4: sequential block (weight-streaming pattern): write M consecutive words,
        // then read them back with cmd_valid held high; measure sustained cycles/word.
        for (i = 0; i < M; i = i + 1) begin
            wq_data[wq_tail % N] = data_of(i + 7); wq_we[wq_tail % N] = {DW/8{1'b1}};
            wq_tail = wq_tail + 1;
            issue(1, SEQ_BASE + i);
        end
        idle;
        wait (wq_head == wq_tail);
        @(posedge clk);
        ts0 = $realtime;
        for (i = 0; i < M; i = i + 1) begin
            sq_exp[sq_tail % N] = data_of(i + 7); sq_tail = sq_tail + 1;
            issue(0, SEQ_BASE + i);
        end
        idle;
        wait (sq_head == sq_tail);
        ts1 = $realtime;
        $display("sequential: %0d reads of %0d bit in %0.0f ns (%0.2f clk cycles/word, %0.1f MB/s)",
                 M, DW, ts1 - ts0, (ts1 - ts0) / CLK_PERIOD / M, DW / 8.0 * M / (ts1 - ts0) * 1000.0);
        repeat (20) @(posedge clk);
        $display("writes: %0d in %0.0f ns (%0.2f cycles/word); reads: %0d in %0.0f ns (%0.2f cycles/word)",
                 N, tw1 - tw0, (tw1 - tw0) / CLK_PERIOD / N, N, tr1 - tr0, (tr1 - tr0) / CLK_PERIOD / N);
        $display("clk period %0.2f ns, sdram clk lag %0.2f ns, read round trip %0.2f ns",
                 CLK_PERIOD, PS_DELAY, T_RT);
        $display("model: ACT=%0d RD=%0d WR=%0d PRE=%0d REF=%0d MRS=%0d errors=%0d",
                 chip.n_act, chip.n_rd, chip.n_wr, chip.n_pre, chip.n_ref, chip.n_mrs, chip.errors);
        $display("reads ok=%0d mismatches=%0d sequential mismatches=%0d", reads_ok, mismatches, seq_bad);
        if (mismatches == 0 && seq_bad == 0 && chip.errors == 0 && reads_ok == N + SINGLE) $display("TEST PASSED");
        else $display("TEST FAILED");
        $finish;
    end

    initial begin
        #(5_000_000);
        $display("model: ACT=%0d RD=%0d WR=%0d PRE=%0d REF=%0d MRS=%0d errors=%0d",
                 chip.n_act, chip.n_rd, chip.n_wr, chip.n_pre, chip.n_ref, chip.n_mrs, chip.errors);
        $display("TIMEOUT wq %0d/%0d rq %0d/%0d", wq_head, wq_tail, rq_head, rq_tail);
        $display("TEST FAILED"); $finish;
    end
endmodule
