// Simulation stand-ins for the five ECP5 primitives the generated SDRAM controller
// (sdtforge.boards.litedram) instantiates: OFS1P3BX, IFS1P3BX, FD1S3BX, BB, ODDRX1F. Only the
// behaviour the controller uses; Yosys' share/ecp5/cells_sim.v does not parse in Icarus 11.
// "BX" registers have REGSET=SET: they power up (GSR) at 1.
`timescale 1ns / 1ps
module OFS1P3BX (input PD, input D, input SP, input SCLK, output reg Q);
    parameter GSR = "ENABLED";
    initial Q = 1'b1;
    always @(posedge SCLK or posedge PD) if (PD) Q <= 1'b1; else if (SP) Q <= D;
endmodule
module IFS1P3BX (input PD, input D, input SP, input SCLK, output reg Q);
    parameter GSR = "ENABLED";
    initial Q = 1'b1;
    always @(posedge SCLK or posedge PD) if (PD) Q <= 1'b1; else if (SP) Q <= D;
endmodule
module FD1S3BX (input PD, input D, input CK, output reg Q);
    parameter GSR = "ENABLED";
    initial Q = 1'b1;
    always @(posedge CK or posedge PD) if (PD) Q <= 1'b1; else Q <= D;
endmodule
module BB (input I, input T, output O, inout B);
    assign B = T ? 1'bz : I;
    assign O = B;
endmodule
module ODDRX1F (input SCLK, input RST, input D0, input D1, output Q);
    reg q0 = 1'b0, q1 = 1'b0;
    always @(posedge SCLK) begin q0 <= D0; q1 <= D1; end
    assign Q = SCLK ? q0 : q1;
endmodule
