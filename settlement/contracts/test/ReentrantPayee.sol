// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IWithdraw {
    function withdraw(address asset) external;
    function withdrawFor(address payee, address asset) external;
}

/// @title Test only: a payee whose receive() re-enters the escrow to withdraw again.
/// @notice The escrow must pay it exactly its credit once, whatever it tries.
contract ReentrantPayee {
    IWithdraw public immutable escrow;
    uint256 public reentries;
    uint256 public received;
    bool public reenterFor;

    constructor(IWithdraw escrow_) {
        escrow = escrow_;
    }

    function setReenterFor(bool on) external {
        reenterFor = on;
    }

    function pull() external {
        escrow.withdraw(address(0));
    }

    receive() external payable {
        received += msg.value;
        if (reentries < 3) {
            reentries += 1;
            // Swallow the failure so the outer call can show that re-entry paid nothing.
            if (reenterFor) {
                try escrow.withdrawFor(address(this), address(0)) {} catch {}
            } else {
                try escrow.withdraw(address(0)) {} catch {}
            }
        }
    }
}

/// @title Test only: a token that keeps 1 % of every transfer (deposits must refuse it).
contract FeeOnTransferToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        return _move(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        allowance[from][msg.sender] -= amount;
        return _move(from, to, amount);
    }

    function _move(address from, address to, uint256 amount) private returns (bool) {
        balanceOf[from] -= amount;
        balanceOf[to] += amount - amount / 100;
        return true;
    }
}
