// sdram_chip: behavioural model of an x16 SDR SDRAM chip (4 banks), Verilog-2005, for
// co-simulating the LiteDRAM controller (sdtforge.boards.litedram) at its pins with Icarus
// Verilog or Verilator. LiteDRAM's own model (litedram.phy.model.SDRAMPHYModel) replaces the
// PHY at the DFI level in Python, so it has no pins and cannot check the generated Verilog.
//
// Models: the whole array (ROW_BITS x COL_BITS x 4 banks of 16 bit; COL_BITS 9 for the
// MT48LC16M16, 10 for the AS4C32M16); the commands DESELECT/NOP, ACTIVE, READ and WRITE with
// and without auto-precharge (A10; the precharge waits for tRAS, as on Micron's parts),
// PRECHARGE one bank or all, AUTO REFRESH and LOAD MODE REGISTER (CAS latency 2 or 3, burst
// length 1 or 2, sequential); DQM byte masks on writes; read data driven T_AC after the clock
// edge CL-1 edges after READ, held until T_OH after the next edge, X in between.
//
// Checks, each counted in `errors` and printed as "SDRAM-MODEL ERROR @<time> ns: <rule>":
// the power-up wait (T_INIT with CKE high before the first command), LOAD MODE REGISTER
// before ACTIVE/READ/WRITE and only with all banks closed, its fields, ACTIVE to an open bank,
// READ/WRITE to a closed bank, tRCD, tRP, tRAS, tWR, tRFC, tMRD, the gap between refreshes
// (T_REFI_MAX), the controller driving DQ while the chip does, X/Z in unmasked write data,
// BURST TERMINATE. Not modelled: command setup/hold (tIS/tIH), speed-grade tAC/tOH, DQM read
// latency, interleaved bursts, bursts longer than 2. Counters n_act, n_rd, n_wr, n_pre,
// n_ref, n_mrs count the commands.
`timescale 1ns / 1ps
module sdram_chip #(
    parameter ROW_BITS  = 13,
    parameter COL_BITS  = 9,      // MT48LC16M16: 9 (32 MB); AS4C32M16: 10 (64 MB)
    parameter BA_BITS   = 2,
    parameter real T_RCD  = 20.0,
    parameter real T_RP   = 20.0,
    parameter real T_RAS  = 44.0,
    parameter real T_WR   = 15.0,
    parameter real T_RFC  = 66.0,
    parameter real T_AC   = 5.4,  // clock to data out
    parameter real T_OH   = 2.7,  // data out hold after next clock
    parameter real T_INIT = 100000.0, // power-up wait (ns) before first command
    parameter real T_REFI_MAX = 15625.0, // max gap between REF commands after init (ns)
    parameter VERBOSE = 0
) (
    input  wire                clk,
    input  wire                cke,
    input  wire                cs_n,
    input  wire                ras_n,
    input  wire                cas_n,
    input  wire                we_n,
    input  wire [BA_BITS-1:0]  ba,
    input  wire [ROW_BITS-1:0] a,
    input  wire [1:0]          dqm,
    inout  wire [15:0]         dq
);
    localparam NBANKS = 1 << BA_BITS;
    localparam AW     = BA_BITS + ROW_BITS + COL_BITS;

    reg [15:0] mem [0:(1<<AW)-1];

    integer errors = 0;
    integer n_act = 0, n_rd = 0, n_wr = 0, n_ref = 0, n_pre = 0, n_mrs = 0;
    integer cl = 0;
    integer bl = 1;
    // Write burst in progress (BL 2: second data word on the next clock).
    integer      wr_left = 0;
    reg [AW-1:0] wr_next;
    reg [BA_BITS-1:0] wr_bank;
    integer k;
    reg     mode_set = 1'b0;

    reg                open   [0:NBANKS-1];
    reg [ROW_BITS-1:0] row    [0:NBANKS-1];
    real               t_act  [0:NBANKS-1];
    real               t_pre  [0:NBANKS-1];   // time the bank became (or becomes) precharged
    real               t_wr   [0:NBANKS-1];   // last write data time
    real               t_ref  = -1.0e9;
    real               t_mrs  = -1.0e9;
    real               t_cke  = -1.0;
    real               t_last_ref = -1.0;
    integer i;
    initial begin
        for (i = 0; i < NBANKS; i = i + 1) begin
            open[i] = 0; row[i] = 0; t_act[i] = -1.0e9; t_pre[i] = -1.0e9; t_wr[i] = -1.0e9;
        end
    end

    // Read data pipeline (circular, indexed by clock count).
    reg          rd_v    [0:7];
    reg [AW-1:0] rd_addr [0:7];
    integer      cyc = 0;
    initial for (i = 0; i < 8; i = i + 1) rd_v[i] = 0;

    reg [15:0] dq_o  = 16'h0;
    reg        dq_oe = 1'b0;
    reg        driving = 1'b0;
    assign dq = dq_oe ? dq_o : 16'hzzzz;

    // DQ output events (time, value, drive) in a FIFO, applied by one process.  T_AC may be
    // longer than a clock period; intra-assignment delays (`x <= #d v`) spanning a clock edge
    // gave wrong data in Verilator, this works in Icarus and Verilator alike.
    real         ev_t  [0:15];
    reg   [15:0] ev_v  [0:15];
    reg          ev_oe [0:15];
    integer      ev_head = 0, ev_tail = 0;
    task push_ev(input real t, input [15:0] v, input oe);
        begin
            ev_t[ev_tail % 16] = t; ev_v[ev_tail % 16] = v; ev_oe[ev_tail % 16] = oe;
            ev_tail = ev_tail + 1;
        end
    endtask
    always begin
        wait (ev_head != ev_tail);
        if (ev_t[ev_head % 16] > $realtime) #(ev_t[ev_head % 16] - $realtime);
        dq_o  = ev_v[ev_head % 16];
        dq_oe = ev_oe[ev_head % 16];
        ev_head = ev_head + 1;
    end

    task err(input [8*64-1:0] msg);
        begin
            errors = errors + 1;
            $display("SDRAM-MODEL ERROR @%0.1f ns: %0s (cmd cs/ras/cas/we=%b%b%b%b ba=%0d a=%h)",
                     $realtime, msg, cs_n, ras_n, cas_n, we_n, ba, a);
        end
    endtask

    // CKE may already be high at time 0 (ECP5 output registers power up at 1).
    always @(cke) if (cke === 1'b1 && t_cke < 0.0) t_cke = $realtime;
    always @(cke) if (cke !== 1'b1) t_cke = -1.0;

    wire [3:0] cmd = {cs_n, ras_n, cas_n, we_n};
    localparam C_MRS = 4'b0000, C_REF = 4'b0001, C_PRE = 4'b0010, C_ACT = 4'b0011,
               C_WR  = 4'b0100, C_RD  = 4'b0101, C_BST = 4'b0110, C_NOP = 4'b0111;

    reg [COL_BITS-1:0] col;
    reg [AW-1:0] waddr;
    integer b;
    real now;
    real t_prev_clk = 0.0;
    always @(posedge clk) begin
        t_prev_clk = now;
        now = $realtime;
        cyc = cyc + 1;
        // ---- read data output (scheduled CL-1 edges after READ) ----
        if (rd_v[cyc % 8]) begin
            rd_v[cyc % 8] = 0;
            if (driving) push_ev(now + T_OH, 16'hxxxx, 1'b1);
            push_ev(now + T_AC, mem[rd_addr[cyc % 8]], 1'b1);
            driving = 1'b1;
        end else if (driving) begin
            push_ev(now + T_OH, 16'hxxxx, 1'b0);
            driving = 1'b0;
        end
        // ---- continuing write burst ----
        if (wr_left > 0) begin
            if (!dqm[0]) mem[wr_next][7:0]  = dq[7:0];
            if (!dqm[1]) mem[wr_next][15:8] = dq[15:8];
            if (^dq === 1'bx && dqm != 2'b11) err("WRITE burst data has X/Z");
            t_wr[wr_bank] = now;
            wr_next[0] = ~wr_next[0];
            wr_left = wr_left - 1;
        end
        // ---- commands ----
        if (cke && !cs_n && cmd != C_NOP) begin
            if (t_cke < 0.0 || now - t_cke < T_INIT) err("command before power-up wait (T_INIT)");
            case (cmd)
            C_MRS: begin
                n_mrs = n_mrs + 1;
                for (b = 0; b < NBANKS; b = b + 1) if (open[b]) err("MRS with open bank");
                if (a[2:0] != 3'b000 && a[2:0] != 3'b001) err("MRS: burst length is not 1 or 2");
                if (a[3]) err("MRS: interleaved burst not modelled");
                bl = 1 << a[2:0];
                if (a[6:4] != 3'd2 && a[6:4] != 3'd3) err("MRS: unsupported CAS latency");
                if (ba != 0 || a[ROW_BITS-1:10] != 0) err("MRS: reserved bits set");
                cl = a[6:4]; mode_set = 1'b1; t_mrs = now;
                if (VERBOSE) $display("SDRAM-MODEL @%0.1f ns: MRS CL=%0d", $realtime, cl);
            end
            C_REF: begin
                n_ref = n_ref + 1;
                for (b = 0; b < NBANKS; b = b + 1) begin
                    if (open[b]) err("REF with open bank");
                    if (now - t_pre[b] < T_RP - 0.01) err("REF: tRP violated");
                end
                if (now - t_ref < T_RFC - 0.01) err("REF: tRFC violated");
                if (mode_set && t_last_ref > 0.0 && now - t_last_ref > T_REFI_MAX) err("refresh interval too long");
                t_ref = now; t_last_ref = now;
            end
            C_PRE: begin
                n_pre = n_pre + 1;
                for (b = 0; b < NBANKS; b = b + 1) if (a[10] || b == ba) begin
                    if (open[b]) begin
                        if (now - t_act[b] < T_RAS - 0.01) err("PRE: tRAS violated");
                        if (now - t_wr[b]  < T_WR  - 0.01) err("PRE: tWR violated");
                        open[b] = 0; t_pre[b] = now;
                    end
                end
            end
            C_ACT: begin
                n_act = n_act + 1;
                if (!mode_set) err("ACT before MRS");
                if (open[ba]) err("ACT to open bank");
                if (now - t_pre[ba] < T_RP - 0.01) err("ACT: tRP violated");
                if (now - t_ref < T_RFC - 0.01) err("ACT: tRFC violated");
                if (now - t_mrs < 2.0 * (now - t_prev_clk) - 0.01) err("ACT: tMRD (2 clocks) violated");
                open[ba] = 1; row[ba] = a; t_act[ba] = now;
            end
            C_WR, C_RD: begin
                wr_left = 0;  // a new READ/WRITE ends a write burst
                if (!mode_set) err("READ/WRITE before MRS");
                if (!open[ba]) err("READ/WRITE to closed bank");
                if (now - t_act[ba] < T_RCD - 0.01) err("READ/WRITE: tRCD violated");
                col = a[COL_BITS-1:0];
                if (COL_BITS > 10) err("model: COL_BITS > 10 unsupported (A10 is auto-precharge)");
                waddr = {ba, row[ba], col};
                if (cmd == C_WR) begin
                    n_wr = n_wr + 1;
                    if (dq_oe) err("WRITE while model drives DQ (bus contention)");
                    if (!dqm[0]) mem[waddr][7:0]  = dq[7:0];
                    if (!dqm[1]) mem[waddr][15:8] = dq[15:8];
                    if (^dq === 1'bx && dqm != 2'b11) err("WRITE data has X/Z");
                    t_wr[ba] = now;
                    if (bl > 1) begin
                        wr_left = bl - 1; wr_next = waddr; wr_next[0] = ~waddr[0]; wr_bank = ba;
                    end
                    if (a[10]) begin
                        // Auto precharge starts tWR after the last data word, but not before
                        // tRAS(min) (the device delays it, cf. Micron MT48LC16M16).
                        open[ba] = 0; t_pre[ba] = now + (bl - 1) * (now - t_prev_clk) + T_WR;
                        if (t_pre[ba] < t_act[ba] + T_RAS) t_pre[ba] = t_act[ba] + T_RAS;
                    end
                end else begin
                    n_rd = n_rd + 1;
                    if (cl < 2) err("READ with unsupported CL");
                    for (k = 0; k < bl; k = k + 1) begin
                        rd_v[(cyc + cl - 1 + k) % 8]    = 1'b1;
                        rd_addr[(cyc + cl - 1 + k) % 8] = waddr ^ k;
                    end
                    if (a[10]) begin
                        open[ba] = 0; t_pre[ba] = now + (bl - 1) * (now - t_prev_clk);
                        if (t_pre[ba] < t_act[ba] + T_RAS) t_pre[ba] = t_act[ba] + T_RAS;
                    end
                end
            end
            C_BST: err("BURST TERMINATE not expected");
            endcase
        end
    end
endmodule
